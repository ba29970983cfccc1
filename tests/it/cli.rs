//! Refusals before any write: each is exit 2 with one line naming the path.

use crate::util::*;
use std::fs;

#[test]
fn missing_source_is_exit_2_and_writes_nothing() {
    let env = TestEnv::new();
    let mut c = env.cmd();
    c.arg(env.path("nope")).arg(&env.dst);
    let out = run(c);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("nope"), "{}", explain(&out));
    assert!(!env.dst.exists());
}

#[test]
fn source_that_is_a_file_is_refused() {
    let env = TestEnv::new();
    fs::write(env.path("file"), b"x").unwrap();
    let mut c = env.cmd();
    c.arg(env.path("file")).arg(&env.dst);
    let out = run(c);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("file"), "{}", explain(&out));
    assert!(!env.dst.exists());
}

#[test]
fn destination_inside_source_is_refused_even_through_a_symlink() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    std::os::unix::fs::symlink(&env.src, env.path("alias")).unwrap();
    for dst in [env.src.join("sub"), env.path("alias/sub/deeper")] {
        let mut c = env.cmd();
        c.arg(&env.src).arg(&dst);
        let out = run(c);
        assert_code(&out, 2);
        assert!(stderr(&out).contains("into itself"), "{}", explain(&out));
        assert!(!env.src.join("sub").exists(), "nothing written");
    }
}

#[test]
fn same_source_and_destination_is_refused() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    let mut c = env.cmd();
    c.arg(&env.src).arg(&env.src);
    let out = run(c);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("same directory"), "{}", explain(&out));
    assert_eq!(fs::read(env.src.join("f")).unwrap(), b"x");
}

#[test]
fn bad_flag_is_usage_error_and_help_lists_options() {
    let env = TestEnv::new();
    let mut c = env.cmd();
    c.arg("--no-such-flag");
    assert_code(&run(c), 2);
    let mut c = env.cmd();
    c.arg("--help");
    let out = run(c);
    assert_code(&out, 0);
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--processes",
        "--log-file",
        "--json",
        "--quiet",
        "--verbose",
        "--config",
        "--ignore-times",
    ] {
        assert!(help.contains(opt), "help lacks {opt}");
    }
    assert!(!help.contains("--worker"), "internal flag is hidden");
}

#[test]
fn a_locked_destination_is_refused() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    fs::create_dir(&env.dst).unwrap();
    let d = fs::File::open(&env.dst).unwrap();
    rustix::fs::flock(&d, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let out = env.copy(&[]);
    // sysexits' EX_TEMPFAIL: a retry later will work.
    assert_code(&out, 75);
    assert!(
        stderr(&out).contains("in use by another pcopy run"),
        "{}",
        explain(&out)
    );
    assert!(!env.dst.join("f").exists());
    drop(d);
    assert_code(&env.copy(&[]), 0);
}

#[test]
fn a_missing_destination_parent_is_refused_unless_mkpath() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    let dst = env.path("no/such/mount/dst");
    let mut c = env.cmd();
    c.arg(&env.src).arg(&dst);
    let out = run(c);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("does not exist") && stderr(&out).contains("--mkpath"),
        "{}",
        explain(&out)
    );
    assert!(!env.path("no").exists(), "nothing created");
    let mut c = env.cmd();
    c.arg("--mkpath").arg(&env.src).arg(&dst);
    assert_code(&run(c), 0);
    assert_eq!(fs::read(dst.join("f")).unwrap(), b"x");
}

#[test]
fn the_readme_help_and_code_share_one_exit_code_table() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Exit codes").nth(1).unwrap();
    let rows: Vec<(u8, String)> = section
        .lines()
        .skip_while(|l| !l.starts_with("|---"))
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].parse().unwrap(), cells[1].to_string())
        })
        .collect();
    let code: Vec<(u8, String)> = pcopy::error::ExitStatus::TABLE
        .iter()
        .map(|(c, m)| (*c, m.to_string()))
        .collect();
    assert_eq!(
        rows, code,
        "README's exit-code table differs from ExitStatus::TABLE"
    );
    let help = run({
        let mut c = std::process::Command::new(bin());
        c.arg("--help");
        c
    });
    let text = String::from_utf8_lossy(&help.stdout);
    for (c, m) in pcopy::error::ExitStatus::TABLE {
        let line = format!("{c:>3}  {}", m.replace('`', ""));
        assert!(text.contains(&line), "--help lacks {line:?}:\n{text}");
    }
}

#[cfg(not(feature = "mpi"))]
#[test]
fn mpi_without_the_feature_is_a_usage_error_that_says_how_to_build_it() {
    let env = TestEnv::new();
    std::fs::write(env.src.join("f"), b"x").unwrap();
    let out = env.copy(&["--mpi"]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("built without MPI support") && err.contains("--features mpi"),
        "{err}"
    );
    assert!(!env.dst.exists(), "nothing written");
}
