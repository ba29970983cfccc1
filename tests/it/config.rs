//! The config.json flow: original keys, relative paths, precedence, errors.

use crate::util::*;
use std::fs;

fn write_cfg(env: &TestEnv, name: &str, body: &str) -> std::path::PathBuf {
    let p = env.path(name);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(&p, body).unwrap();
    p
}

#[test]
fn default_config_json_in_cwd_with_relative_paths() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"data").unwrap();
    write_cfg(
        &env,
        "config.json",
        r#"{"source": "src", "destination": "dst", "processes": 2, "log_file": "logs/app.log"}"#,
    );
    let mut c = env.cmd();
    c.arg("--json");
    let out = run(c);
    assert_code(&out, 0);
    assert_eq!(parse_json(&out)["workers"], 2);
    assert_eq!(fs::read(env.dst.join("f")).unwrap(), b"data");
    assert!(env.path("logs/app.log").exists());
}

#[test]
fn config_paths_resolve_against_the_config_files_directory() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"data").unwrap();
    let cfg = write_cfg(
        &env,
        "conf/pc.json",
        r#"{"source": "../src", "destination": "../dst"}"#,
    );
    let mut c = env.cmd();
    c.current_dir("/").arg("--config").arg(&cfg);
    let out = run(c);
    assert_code(&out, 0);
    assert!(env.dst.join("f").exists());
}

#[test]
fn command_line_overrides_the_file() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"data").unwrap();
    let cfg = write_cfg(
        &env,
        "c.json",
        r#"{"source": "src", "destination": "elsewhere", "processes": 1}"#,
    );
    let mut c = env.cmd();
    c.arg("--config")
        .arg(&cfg)
        .arg("-j")
        .arg("3")
        .arg("--json")
        .arg(&env.src)
        .arg(&env.dst);
    let out = run(c);
    assert_code(&out, 0);
    assert_eq!(parse_json(&out)["workers"], 3);
    assert!(env.dst.join("f").exists());
    assert!(!env.path("elsewhere").exists());
}

fn expect_config_error(body: &str, needle: &str) {
    let env = TestEnv::new();
    let cfg = write_cfg(&env, "bad.json", body);
    let mut c = env.cmd();
    c.arg("--config").arg(&cfg);
    let out = run(c);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(needle),
        "expected {needle:?} in: {}",
        explain(&out)
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!env.dst.exists());
}

#[test]
fn malformed_json_is_exit_2_naming_the_file() {
    expect_config_error(r#"{"source": "src", "#, "bad.json");
}

#[test]
fn unknown_key_is_exit_2_naming_the_key() {
    expect_config_error(
        r#"{"source": "src", "destination": "dst", "procesess": 2}"#,
        "procesess",
    );
}

#[test]
fn zero_processes_is_exit_2() {
    expect_config_error(
        r#"{"source": "src", "destination": "dst", "processes": 0}"#,
        "processes",
    );
}

#[test]
fn a_negative_bwlimit_is_exit_2_not_no_limit() {
    expect_config_error(
        r#"{"source": "src", "destination": "dst", "bwlimit": -5}"#,
        "bwlimit",
    );
}

#[test]
fn missing_source_from_config_is_exit_2_naming_it() {
    expect_config_error(
        r#"{"source": "no-such-src", "destination": "dst"}"#,
        "no-such-src",
    );
}

#[test]
fn no_paths_and_no_config_json_is_a_usage_error() {
    let env = TestEnv::new();
    let out = run(env.cmd());
    assert_code(&out, 2);
    assert!(stderr(&out).contains("config.json"), "{}", explain(&out));
}

#[test]
fn filter_rules_apply_in_the_order_given_and_the_first_match_wins() {
    let env = TestEnv::new();
    fs::create_dir_all(env.src.join("share/adduser")).unwrap();
    fs::write(env.src.join("share/adduser/conf"), b"c").unwrap();
    fs::write(env.src.join("a.log"), b"l").unwrap();
    fs::write(env.src.join("keep.log"), b"k").unwrap();
    fs::write(env.src.join("b.txt"), b"t").unwrap();
    let patterns = env.path("excludes");
    fs::write(&patterns, "# comment\n\n*.log\n").unwrap();
    let out = env.copy(&[
        "--exclude",
        "adduser/",
        "--include",
        "adduser/",
        "--include",
        "keep.log",
        "--exclude-from",
        patterns.to_str().unwrap(),
    ]);
    assert_code(&out, 0);
    assert!(!env.dst.join("share/adduser").exists(), "rsync drops it");
    assert!(
        env.dst.join("keep.log").exists(),
        "included before the excludes"
    );
    assert!(!env.dst.join("a.log").exists(), "--exclude-from read");
    assert!(env.dst.join("b.txt").exists());
}

/// A value config.json gave that pcopy refuses names the file and the key,
/// as a malformed file does; the same value from a flag names the flag's
/// value only (the file had nothing to do with it).
#[test]
fn a_bad_value_from_the_file_names_the_file_and_the_key() {
    for (key, value) in [
        ("processes", "0"),
        ("processes", "5000"),
        ("bwlimit", "-5"),
        ("bwlimit", "\"zz\""),
        ("stall_timeout", "0"),
        ("max_delete_percent", "150"),
    ] {
        let body = format!(r#"{{"source": "src", "destination": "dst", "{key}": {value}}}"#);
        expect_config_error(&body, &format!("bad.json: \"{key}\":"));
    }
    let env = TestEnv::new();
    let cfg = write_cfg(
        &env,
        "ok.json",
        r#"{"source": "src", "destination": "dst"}"#,
    );
    let mut c = env.cmd();
    c.arg("--config").arg(&cfg).args(["--bwlimit", "zz"]);
    let out = run(c);
    assert_code(&out, 2);
    assert!(!stderr(&out).contains("ok.json"), "{}", explain(&out));
}
