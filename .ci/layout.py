#!/usr/bin/env python3
"""The code's shape, checked (issue 22): no file under src/ over MAX_FILE
lines, and no function over MAX_FN lines without a one-line reason in its
doc comment (a line with "Long because"). Test functions are exempt.
Functions are measured by indentation: from the `fn` line to the closing
brace at the same indentation, as rustfmt lays them out."""
import os
import re
import sys

MAX_FILE = 600
MAX_FN = 60
FN = re.compile(r'^(\s*)(pub(\([a-z:]+\))? )?(const )?(async )?(unsafe )?fn (\w+)')


def functions(lines):
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m or lines[i].rstrip().endswith(';'):
            i += 1
            continue
        ind = len(m.group(1))
        j = i + 1
        while j < len(lines) and not (
            lines[j].startswith(' ' * ind + '}')
            and (len(lines[j].rstrip()) == ind + 1 or lines[j][ind + 1] in ' ,;)')
        ):
            j += 1
        # The doc comment and attributes above the fn line.
        k = i - 1
        doc = []
        while k >= 0 and lines[k].strip().startswith(('///', '#[')):
            doc.append(lines[k])
            k -= 1
        yield m.group(7), i + 1, j - i + 1, doc
        i += 1


def main():
    bad = []
    for root, _, files in os.walk('src'):
        for f in sorted(files):
            if not f.endswith('.rs'):
                continue
            path = os.path.join(root, f)
            lines = open(path, encoding='utf-8').read().split('\n')
            if len(lines) - 1 > MAX_FILE:
                bad.append(f'{path}: {len(lines) - 1} lines (at most {MAX_FILE})')
            in_tests = False
            for name, line, length, doc in functions(lines):
                # Everything after `mod tests` is test code.
                if not in_tests and any(
                    l.strip().startswith('mod tests') for l in lines[:line]
                ):
                    in_tests = True
                if in_tests or any('#[test]' in d for d in doc):
                    continue
                if length > MAX_FN and not any('Long because' in d for d in doc):
                    bad.append(f'{path}:{line}: fn {name} is {length} lines '
                               f'(over {MAX_FN}) with no "Long because" line')
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
