//! The man page. clap renders the name, description and options; the rest
//! (configuration keys, filter rules, exit status, JSON fields, files,
//! examples) is written here, because an installed binary has no `docs/`.
//! Unit tests keep the key and field lists equal to the code's.

use crate::error::ExitStatus;
use std::io::Write;

/// Every config.json key with its flag and meaning.
pub const CONFIG_KEYS: &[(&str, &str)] = &[
    ("source", "SOURCE: the directory whose contents are copied"),
    (
        "destination",
        "DESTINATION: where they go (created if missing)",
    ),
    (
        "processes",
        "-j: worker processes (default: CPUs, at least 4)",
    ),
    ("log_file", "--log-file: append the run's log here"),
    (
        "ignore_times",
        "-I: copy even files whose size and mtime match",
    ),
    ("fsync", "--fsync: fsync each file before placing it"),
    ("dereference", "-L: follow symlinks in the source"),
    ("exclude", "--exclude: list of patterns to skip"),
    (
        "include",
        "--include: list of patterns to keep (checked before exclude)",
    ),
    ("exclude_from", "--exclude-from: files of exclude patterns"),
    ("include_from", "--include-from: files of include patterns"),
    (
        "verify",
        "--verify: BLAKE3-compare each copy before placing it",
    ),
    (
        "stall_timeout",
        "--stall-timeout: seconds before a silent worker is replaced",
    ),
    (
        "mkpath",
        "--mkpath: create the destination's missing parents",
    ),
    ("one_file_system", "-x: do not cross filesystem boundaries"),
    ("update", "-u: keep files that are newer at the destination"),
    (
        "checksum",
        "-c: compare content (BLAKE3), not size and mtime",
    ),
    (
        "reflink",
        "--reflink: auto (share extents where possible), always, or never",
    ),
    (
        "bwlimit",
        "--bwlimit: a rate for all workers together, \"40M\" (rsync's units)",
    ),
    ("files_from", "--files-from: copy only the listed paths"),
    ("from0", "--from0: the list is NUL-separated"),
    (
        "delete",
        "--delete: remove destination entries the source lacks",
    ),
    (
        "delete_excluded",
        "--delete-excluded: excluded entries are removed too",
    ),
    (
        "max_delete",
        "--max-delete: at most this many deletions (exit 25)",
    ),
    (
        "max_delete_percent",
        "--max-delete-percent: no deletion when more than this share would go (exit 26)",
    ),
    (
        "allow_empty_source",
        "--allow-empty-source: --delete from an empty source root",
    ),
    (
        "backup_dir",
        "--backup-dir: move deleted and replaced entries here",
    ),
    ("suffix", "--suffix: appended to backed-up names"),
    (
        "link_dest",
        "--link-dest: basis directories to hard-link unchanged entries from (list)",
    ),
    (
        "compare_dest",
        "--compare-dest: basis directories whose unchanged entries are left out (list)",
    ),
    (
        "copy_dest",
        "--copy-dest: basis directories whose unchanged entries are copied locally (list)",
    ),
];

/// Every field of the `--json` summary with its meaning.
pub const JSON_FIELDS: &[(&str, &str)] = &[
    ("schema_version", "1; changes when a field changes meaning"),
    ("source", "the source as given"),
    ("destination", "the destination as given"),
    ("started_at", "RFC 3339 UTC"),
    ("finished_at", "RFC 3339 UTC"),
    ("exit_code", "the process's exit status"),
    ("files_found", "non-directory entries found"),
    ("files_copied", "regular files written"),
    ("files_skipped", "entries already up to date"),
    ("files_failed", "non-directory entries that failed"),
    (
        "entries_vanished",
        "failures that were vanished source entries",
    ),
    ("dirs_created", "directories created"),
    ("dirs_failed", "directories that failed"),
    ("symlinks_copied", "symlinks placed"),
    ("hardlinks_created", "hard links made"),
    ("specials_copied", "FIFOs and devices placed"),
    ("entries_ignored", "sockets skipped"),
    ("bytes_found", "regular-file bytes found"),
    ("bytes_copied", "bytes written"),
    ("files_cloned", "files placed as clones (--reflink)"),
    ("bytes_cloned", "their bytes (shared, not written)"),
    ("bytes_skipped", "bytes of up-to-date files"),
    ("bytes_linked", "bytes of further hard-link names"),
    ("bytes_failed", "bytes of failed files"),
    (
        "files_linked_from_basis",
        "entries hard-linked from a --link-dest directory",
    ),
    (
        "bytes_linked_from_basis",
        "their bytes (shared, not written)",
    ),
    ("elapsed_seconds", "wall time"),
    ("workers", "the worker pool (-j, or what it grew to)"),
    ("workers_started", "workers started (as work arrived)"),
    ("worker_restarts", "worker deaths survived"),
    ("interrupted", "stopped by a signal"),
    ("dry_run", "nothing was written"),
    ("entries_excluded", "entries skipped by filters"),
    ("entries_repaired", "metadata fixed in place"),
    ("entries_deleted", "entries removed by --delete"),
    ("delete_limit_reached", "--max-delete stopped deletions"),
    (
        "deletes_kept",
        "deletions held back by --max-delete(-percent)",
    ),
    (
        "delete_refused",
        "--max-delete-percent held every deletion back",
    ),
    ("files_verified", "copies that matched (--verify)"),
    ("files_grown", "files still growing, copied as first read"),
    ("disk_full", "the destination filled up"),
    (
        "files_not_copied",
        "files left because the destination was full",
    ),
    ("bytes_not_copied", "their bytes"),
    ("errors", "up to 100 {path, kind, message}"),
    ("errors_truncated", "how many more errors there were"),
];

/// Escape text for roff: a leading dot or quote, and backslashes.
fn roff(s: &str) -> String {
    // An em dash as roff's own glyph: groff warns on the raw character.
    let s = s
        .replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\u{2014}', "\\(em");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn section(out: &mut Vec<u8>, title: &str, paragraphs: &[&str]) {
    let _ = writeln!(out, ".SH {title}");
    for p in paragraphs {
        let _ = writeln!(out, ".PP\n{}", roff(p));
    }
}

fn items<K: AsRef<str>, V: AsRef<str>>(out: &mut Vec<u8>, list: &[(K, V)]) {
    for (k, v) in list {
        let _ = writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            roff(k.as_ref()),
            roff(v.as_ref())
        );
    }
}

/// The CONFIGURATION section's text, before the key list.
const CONFIGURATION: &[&str] = &[
    "With no paths on the command line pcopy reads ./config.json; --config FILE names \
     another. Relative paths inside are taken from the file's directory. Precedence: \
     built-in default < config file < environment variable (PCOPY_CHUNK_BYTES, \
     PCOPY_WORKER_EXE) < command-line flag. Unknown keys are an error. The keys:",
];

/// The FILTER RULES section: what rules select, then what `--delete` spares.
const FILTER_RULES: &[&str] = &[
    "Rules select exactly what rsync's --include/--exclude select (rsync's wildmatch \
     and anchoring). * and ? do not match /, ** does, [...] classes, no {a,b} braces. \
     A pattern without / or ** matches the name at any depth; one with an inner / \
     matches the last as many path elements at any depth; ** may match after any /; \
     a leading / anchors at the source root; a trailing / restricts it to directories; \
     dir/*** is dir and everything below. Rules are checked in the order given and \
     the first match wins; an argument or pattern-file line may start with + or - \
     (include, exclude), and ! alone clears the rules before it; merge files and rule \
     modifiers are refused. The config file's include list comes before its exclude \
     list, then the flags in command-line order. An excluded directory is not \
     descended into.",
    "With --delete an excluded destination entry is protected (unless \
     --delete-excluded) and keeps the directory holding it; with -x nothing on \
     another filesystem than the destination root is deleted; an empty source root is \
     refused (exit 26, --allow-empty-source); --max-delete counts every deletion, type \
     clashes included; --max-delete-percent deletes nothing above its share (exit 26); \
     --backup-dir keeps what is deleted or replaced.",
];

/// The JSON OUTPUT section's text, before the field list.
const JSON_OUTPUT: &[&str] = &[
    "--json prints one object on stdout at the end; a run that cannot start prints \
     {schema_version, exit_code, error: {kind, message}} instead. Each error is \
     {path, kind, message}; kind is the errno name (EACCES) or a word (vanished, \
     changed, type_clash, verify_mismatch, disk_full, other). The fields:",
];

/// The FILES section.
const FILES: &[&str] = &["./config.json: the settings used when no paths are given. \
     .pcopy-tmp.*: temporary names in the destination while a file is written; a \
     later run removes those an interrupted run left. The log file (--log-file): one \
     line per event, each with a UTC time, the run id and the pid."];

/// The EXAMPLES section, one paragraph each.
const EXAMPLES: &[&str] = &[
    "pcopy /data/src /backup/dst \u{2014} copy the contents of /data/src into \
     /backup/dst (with or without a trailing slash: like rsync src/ dst/, unlike \
     cp -a, which would create dst/src).",
    "pcopy -n -i --delete src dst \u{2014} list what a mirror would change, \
     writing nothing.",
    "pcopy --json --log-file copy.log src dst | jq .exit_code",
];

/// The whole page, in roff.
pub fn render(cmd: clap::Command) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = writeln!(
        out,
        ".SH SYNOPSIS\n\\fBpcopy\\fR [\\fIOPTIONS\\fR] [\\fISOURCE\\fR] [\\fIDESTINATION\\fR]"
    );
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);
    section(&mut out, "CONFIGURATION", CONFIGURATION);
    items(&mut out, CONFIG_KEYS);
    section(&mut out, "FILTER RULES", FILTER_RULES);
    let _ = writeln!(out, ".SH \"EXIT STATUS\"");
    let codes: Vec<(String, String)> = ExitStatus::TABLE
        .iter()
        .map(|(c, m)| (c.to_string(), m.replace('`', "")))
        .collect();
    items(&mut out, &codes);
    section(&mut out, "JSON OUTPUT", JSON_OUTPUT);
    items(&mut out, JSON_FIELDS);
    section(&mut out, "FILES", FILES);
    section(&mut out, "EXAMPLES", EXAMPLES);
    section(&mut out, "SEE ALSO", &["rsync(1), cp(1)"]);
    let _ = man.render_version_section(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: serde_json::Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn every_config_key_and_json_field_is_on_the_page() {
        let mut cfg = keys(serde_json::to_value(crate::config::FileConfig::default()).unwrap());
        let mut listed: Vec<String> = CONFIG_KEYS.iter().map(|(k, _)| k.to_string()).collect();
        cfg.sort();
        listed.sort();
        assert_eq!(cfg, listed);
        let mut json = keys(serde_json::to_value(crate::stats::Summary::default()).unwrap());
        let mut listed: Vec<String> = JSON_FIELDS.iter().map(|(k, _)| k.to_string()).collect();
        json.sort();
        listed.sort();
        assert_eq!(json, listed);
    }
}
