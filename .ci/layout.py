#!/usr/bin/env python3
"""The code's shape, checked (issue 22): no file under src/ over MAX_FILE
lines; no function over MAX_FN lines without a one-line reason in its
doc comment (a line with "Long because"), test functions exempt; and no
import circle between the crate's top-level modules or between the
supervisor's; and the layers' import rules (ALLOWED). Functions are measured by indentation: from the `fn` line
to the closing brace at the same indentation, as rustfmt lays them out.
Imports are every `crate::a` path (and, inside the supervisor, every
`crate::supervisor::a` or `super::a` reaching a sibling), test modules
left out."""
import collections
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


def non_test(text):
    i = text.find('#[cfg(test)]\nmod tests')
    return text if i < 0 else text[:i]


def import_graph(base, prefix):
    """Module -> the sibling modules it names, for the modules under base."""
    deps = collections.defaultdict(set)
    for root, _, files in os.walk(base):
        for f in files:
            if not f.endswith('.rs'):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, base)
            top = rel.split('/')[0].removesuffix('.rs')
            if top in ('lib', 'main', 'mod'):
                continue
            text = non_test(open(path, encoding='utf-8').read())
            names = re.findall(prefix + r'([a-z_]+)', text)
            ups = 'super::' * rel.count('/') + 'super::'
            if base != 'src':
                names += re.findall(r'(?<![:\w])' + ups + r'([a-z_]+)', text)
            deps[top].update(n for n in names if n != top and n != 'super')
    return deps


def circles(deps):
    found = set()

    def walk(node, path):
        for nxt in deps.get(node, ()):
            if nxt in path:
                cycle = path[path.index(nxt):]
                k = cycle.index(min(cycle))
                found.add(tuple(cycle[k:] + cycle[:k]))
            elif len(path) < 12:
                walk(nxt, path + [nxt])

    for n in list(deps):
        walk(n, [n])
    return sorted(found)


# Who may import whom (docs/architecture.md, "Layers"): a module listed
# here may name only these of the crate's top-level modules.
ALLOWED = {
    'util': set(),
    'copy': {'util', 'failpoint'},
    'protocol': {'copy', 'util'},
    'stats': {'util'},
    'work': {'copy', 'protocol', 'stats', 'util'},
    'progress': {'config', 'stats', 'util', 'work'},
    'cluster': {'error', 'progress', 'protocol', 'stats', 'util', 'work'},
    'worker': {'copy', 'error', 'failpoint', 'protocol', 'util'},
}


def main():
    bad = []
    graph = import_graph('src', r'crate::')
    for module, allowed in ALLOWED.items():
        for extra in sorted(graph.get(module, set()) - allowed):
            bad.append(f'src/{module}: imports {extra}, outside its layer')
    for base, prefix in (('src', r'crate::'), ('src/supervisor', r'crate::supervisor::')):
        for c in circles(import_graph(base, prefix)):
            bad.append(f'{base}: import circle ' + ' -> '.join(c + (c[0],)))
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
