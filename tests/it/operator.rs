//! Operator features: dry run, filters, verify, progress display, generated
//! completions and man page.

use crate::util::*;
use std::fs;
use std::process::Command;

#[test]
fn dry_run_writes_nothing_and_reports_what_would_happen() {
    let env = TestEnv::new();
    gen_tree(&env.src, 3, 60);
    let (out, v) = env.copy_json(&["--dry-run"]);
    assert_code(&out, 0);
    assert!(!env.dst.exists(), "dry run created the destination");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["files_skipped"], 0);
    let would = v["files_copied"].as_u64().unwrap() + v["symlinks_copied"].as_u64().unwrap();
    assert_eq!(would, v["files_found"].as_u64().unwrap(), "{v}");
    // After a real copy and one change, the dry run sees exactly one file to copy.
    assert_code(&env.copy(&[]), 0);
    fs::write(env.src.join("new-file"), b"n").unwrap();
    settled(&env.dst);
    let before = listing_with_times(&env.dst);
    let (out, v) = env.copy_json(&["-n"]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 1, "{v}");
    assert_eq!(
        v["files_skipped"].as_u64().unwrap() + 1,
        v["files_found"].as_u64().unwrap()
    );
    assert_eq!(
        before,
        listing_with_times(&env.dst),
        "dry run touched the destination"
    );
}

fn listing_with_times(root: &std::path::Path) -> Vec<(std::path::PathBuf, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.path().symlink_metadata().unwrap();
            (e.path().to_path_buf(), m.mtime_nsec(), m.ctime_nsec())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn exclude_and_include_rules_with_nested_directories() {
    let env = TestEnv::new();
    for p in [
        "keep/a.txt",
        "keep/b.tmp",
        "keep/deep/c.txt",
        "keep/deep/d.tmp",
        "build/out.o",
        "src/build/x.o",
        "top.tmp",
    ] {
        let p = env.src.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"x").unwrap();
    }
    // The first matching rule wins (rsync's order): the include goes first.
    let (out, v) = env.copy_json(&[
        "--include",
        "keep/deep/d.tmp",
        "--exclude",
        "*.tmp",
        "--exclude",
        "/build",
    ]);
    assert_code(&out, 0);
    let present = |p: &str| env.dst.join(p).exists();
    assert!(present("keep/a.txt") && present("keep/deep/c.txt"));
    assert!(
        !present("keep/b.tmp") && !present("top.tmp"),
        "*.tmp excluded at any depth"
    );
    assert!(present("keep/deep/d.tmp"), "an earlier include wins");
    assert!(
        !present("build"),
        "anchored directory excluded and not descended"
    );
    assert!(
        present("src/build/x.o"),
        "anchored pattern does not match deeper"
    );
    assert_eq!(v["entries_excluded"], 3, "{v}");
}

#[test]
fn filters_from_config_json() {
    let env = TestEnv::new();
    fs::write(env.src.join("a.log"), b"x").unwrap();
    fs::write(env.src.join("b.dat"), b"x").unwrap();
    fs::write(
        env.path("c.json"),
        r#"{"source":"src","destination":"dst","exclude":["*.log"]}"#,
    )
    .unwrap();
    let mut c = env.cmd();
    c.arg("--config").arg(env.path("c.json"));
    assert_code(&run(c), 0);
    assert!(env.dst.join("b.dat").exists() && !env.dst.join("a.log").exists());
}

#[test]
fn bad_filter_pattern_is_a_usage_error() {
    let env = TestEnv::new();
    let out = env.copy(&["--exclude", "a["]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("a["), "{}", explain(&out));
}

#[test]
fn verify_counts_verified_files() {
    let env = TestEnv::new();
    gen_tree(&env.src, 4, 40);
    let (out, v) = env.copy_json(&["--verify"]);
    assert_code(&out, 0);
    assert_eq!(v["files_verified"], v["files_copied"], "{v}");
    assert!(v["files_verified"].as_u64().unwrap() > 0);
    assert_trees_equal(&env.src, &env.dst);
}

#[test]
fn progress_is_drawn_on_a_terminal_and_not_when_piped() {
    let env = TestEnv::new();
    gen_tree(&env.src, 5, 300);
    if Command::new("script").arg("--version").output().is_err() {
        skip(
            "progress_on_a_terminal",
            "script(1) not installed; no pseudo-terminal to test with",
        );
        return;
    }
    let cmdline = format!(
        "stty cols 80; {} --log-file {} {} {}",
        bin(),
        env.path("p.log").display(),
        env.src.display(),
        env.dst.display()
    );
    let out = Command::new("script")
        .args(["-qfec", &cmdline, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert_code(&out, 0);
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(
        tty.contains('\x1b') || tty.contains('\r'),
        "no redraw sequences:\n{tty:?}"
    );
    // Every frame, escape sequences removed, fits 80 columns; while the
    // walk still counts there is no ETA.
    let frames: Vec<String> = tty
        .split(['\r', '\n'])
        .map(strip_escapes)
        // Walking frames say "12/300+ files", counted ones "12/300 files w4".
        .filter(|f| f.contains("+ files ") || f.contains(" files w"))
        .collect();
    assert!(!frames.is_empty(), "no progress line on a pty:\n{tty:?}");
    for f in &frames {
        assert!(f.chars().count() <= 80, "wider than 80 columns: {f:?}");
        assert!(
            !(f.contains("counting") && f.contains("ETA")),
            "ETA while counting: {f:?}"
        );
    }
    // Piped: the same run has no progress line at all.
    let out = env.copy(&["-I"]);
    assert_code(&out, 0);
    assert!(!stderr(&out).contains("ETA"), "{}", explain(&out));
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    let env = TestEnv::new();
    let mut c = env.cmd();
    c.args(["--completions", "bash"]);
    let out = run(c);
    assert_code(&out, 0);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("--dry-run") && s.contains("pcopy"), "{s}");
    assert!(!s.contains("--worker"), "hidden options offered: {s}");
    let mut c = env.cmd();
    c.arg("--man");
    let out = run(c);
    assert_code(&out, 0);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains(".TH pcopy") && s.contains("exclude"), "{s}");
}

#[test]
fn the_summary_tells_the_whole_truth_in_english() {
    let env = TestEnv::new();
    gen_tree(&env.src, 8, 60);
    let big = env.src.join("big");
    fs::write(&big, vec![1u8; 100_000]).unwrap();
    fs::hard_link(&big, env.src.join("big-link")).unwrap();
    // A directory that fails: a -L loop.
    fs::create_dir(env.src.join("loop")).unwrap();
    std::os::unix::fs::symlink("..", env.src.join("loop/up")).unwrap();
    let (out, v) = env.copy_json(&["-L", "-j", "1"]);
    assert_code(&out, 1);
    let n = |k: &str| v[k].as_u64().unwrap();
    assert!(n("dirs_failed") >= 1, "{v}");
    assert_eq!(n("bytes_linked"), 100_000, "{v}");
    assert_eq!(
        n("bytes_found"),
        n("bytes_copied") + n("bytes_skipped") + n("bytes_linked") + n("bytes_failed"),
        "found = copied + skipped + linked + failed: {v}"
    );
    // The text says the same, with the directory failure and in English.
    let out = env.copy(&["-L", "-j", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("directories created: 0, failed: 1"), "{text}");
    assert!(text.contains("with 1 worker,"), "{text}");
    assert!(text.contains("hard-linked"), "{text}");
    assert!(!text.contains("verified"), "--verify not asked: {text}");
    // A dry run's bytes_skipped equals the real run's.
    let (_, dry) = env.copy_json(&["-n"]);
    let (_, real) = env.copy_json(&[]);
    assert_eq!(dry["bytes_skipped"], real["bytes_skipped"], "{dry}\n{real}");
    assert!(real["bytes_skipped"].as_u64().unwrap() > 0);
    let out = env.copy(&["-n"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("worker"),
        "no workers in a dry run"
    );
}

#[test]
fn json_has_schema_times_exit_code_and_error_kinds() {
    let env = TestEnv::new();
    fs::write(env.src.join("ok"), b"x").unwrap();
    fs::create_dir(env.src.join("clash")).unwrap();
    fs::write(env.src.join("clash/f"), b"x").unwrap();
    fs::create_dir(&env.dst).unwrap();
    fs::write(
        env.dst.join("clash"),
        b"a file where the source has a directory",
    )
    .unwrap();
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 1);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["source"], env.src.to_str().unwrap());
    assert_eq!(v["destination"], env.dst.to_str().unwrap());
    for k in ["started_at", "finished_at"] {
        let t = v[k].as_str().unwrap();
        // RFC 3339 UTC: 2026-11-25T17:22:03.123Z
        assert_eq!(
            (t.len(), &t[4..5], &t[10..11], &t[23..]),
            (24, "-", "T", "Z"),
            "{k}: {t}"
        );
    }
    assert!(v["finished_at"].as_str() >= v["started_at"].as_str());
    let e = &v["errors"][0];
    assert!(e["path"].as_str().unwrap().ends_with("clash"), "{e}");
    assert_eq!(e["kind"], "EEXIST", "the errno name: {e}");
}

#[test]
fn a_fatal_error_with_json_still_prints_one_json_object() {
    let env = TestEnv::new();
    let out = env.copy(&["--json", "--stall-timeout", "0"]);
    assert_code(&out, 2);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["error"]["kind"], "usage");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("stall timeout"));
    assert_eq!(
        stderr(&out).lines().count(),
        1,
        "one line: {}",
        stderr(&out)
    );
}

#[test]
fn bad_paths_and_flags_get_one_line_saying_what_to_do() {
    let env = TestEnv::new();
    let file = env.path("a-file");
    fs::write(&file, b"x").unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec![file.to_str().unwrap(), "dst"],
            "source is not a directory",
        ),
        (
            vec![env.src.to_str().unwrap(), file.to_str().unwrap()],
            "destination exists and is not a directory",
        ),
        (vec!["-j", "-1", "a", "b"], "unexpected argument '-1'"),
        (vec!["--config", "c.json", "only-one"], "ambiguous"),
    ];
    for (args, want) in cases {
        let mut c = env.cmd();
        c.args(&args);
        let out = run(c);
        assert_code(&out, 2);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A terminal frame without its ANSI escape sequences.
fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_man_page_has_real_sections_and_renders_with_man() {
    let env = TestEnv::new();
    let out = run({
        let mut c = Command::new(bin());
        c.arg("--man");
        c
    });
    assert_code(&out, 0);
    let page = env.path("pcopy.1");
    fs::write(&page, &out.stdout).unwrap();
    let Ok(rendered) = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .output()
    else {
        skip("man_page_render", "man(1) not installed");
        return;
    };
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    let plain: String = text.replace("\u{8}", "").chars().collect();
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "CONFIGURATION",
        "FILTER RULES",
        "EXIT STATUS",
        "JSON OUTPUT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            plain.lines().any(|l| l.trim_end() == section),
            "no {section} section:\n{plain}"
        );
    }
    for needle in ["max_delete", "delete_limit_reached", "first", "75", "docs/"] {
        let found = plain.contains(needle);
        assert_eq!(found, needle != "docs/", "{needle:?} on the page: {found}");
    }
    assert!(
        plain.contains("[OPTIONS] [SOURCE] [DESTINATION]"),
        "synopsis: {plain}"
    );
    // No raw em dash (groff warns), no double escape, and what the page
    // names by default is in this build.
    let roff = String::from_utf8_lossy(&out.stdout);
    assert!(!roff.contains('\u{2014}'), "raw em dash in the roff source");
    assert!(plain.contains(".pcopy-tmp.*"), "temp names: {plain}");
    assert_eq!(
        plain.contains("--mpi"),
        cfg!(feature = "mpi"),
        "--mpi on the page"
    );
    let warned = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .output();
    if let Ok(w) = warned {
        let err = String::from_utf8_lossy(&w.stderr);
        assert!(err.trim().is_empty(), "man --warnings: {err}");
    }
}

#[test]
fn bwlimit_holds_for_all_workers_together() {
    // tmpfs, so the limit and not the disk decides the time.
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        skip("bwlimit", "no /dev/shm (tmpfs) to measure on");
        return;
    };
    let (src, dst, log) = (
        dir.path().join("s"),
        dir.path().join("d"),
        dir.path().join("log"),
    );
    fs::create_dir(&src).unwrap();
    let mut r = Lcg::new(40);
    let chunk: Vec<u8> = (0..10 << 20).map(|_| r.next() as u8).collect();
    for i in 0..40 {
        fs::write(src.join(format!("f{i:02}")), &chunk).unwrap();
    }
    let mut c = Command::new(bin());
    c.args(["--bwlimit", "40M", "-j", "4", "--json", "--log-file"])
        .arg(&log)
        .arg(&src)
        .arg(&dst);
    let t0 = std::time::Instant::now();
    let out = run(c);
    let secs = t0.elapsed().as_secs_f64();
    assert_code(&out, 0);
    // 400 MiB at 40 MiB/s for all 4 workers together: 10 s (less the
    // 200 ms burst), not 2.5 s (a per-worker limit). Only the bound a
    // slow or loaded machine cannot break is asserted: it can make a run
    // longer, never shorter (the budget's arithmetic is checked exactly in
    // protocol.rs).
    assert!(secs >= 8.5, "took {secs:.2} s");
    let v = parse_json(&out);
    let rate = v["bytes_copied"].as_f64().unwrap() / v["elapsed_seconds"].as_f64().unwrap();
    let mib = rate / f64::from(1 << 20);
    assert!(mib < 46.0, "summary rate {mib:.1} MiB/s");
    // The summary line the operator reads says the same.
    let text = fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("] time: "))
        .expect("time line");
    let shown: f64 = line
        .split('(')
        .nth(1)
        .and_then(|s| s.split(" MiB/s").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no MiB/s in {line:?}"));
    assert!((shown - mib).abs() < 1.0, "{line:?} vs {mib:.1}");
}
