//! An rsync command line works as it is: the archive flags whose meaning
//! pcopy always has are accepted, flags it cannot honour are refused with
//! what it does instead, the last of a repeated option wins, and sizes and
//! implications follow rsync's.

use crate::util::*;
use std::fs;

fn some_files(env: &TestEnv) {
    fs::create_dir(env.src.join("d")).unwrap();
    fs::write(env.src.join("d/f"), b"data").unwrap();
    fs::write(env.src.join("g"), b"more").unwrap();
}

#[test]
fn rsyncs_archive_flags_are_accepted() {
    let env = TestEnv::new();
    some_files(&env);
    let flags = [
        "-aHAXS",
        "-rlptgoD",
        "-W",
        "-P",
        "--numeric-ids",
        "--stats",
        "--progress",
        "--archive",
        "--hard-links",
        "--acls",
        "--xattrs",
        "--sparse",
        "--devices",
        "--specials",
        "--whole-file",
        "--partial",
        "--delete-after",
    ];
    let out = env.copy(&flags);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
}

#[test]
fn rsync_flags_pcopy_cannot_honour_say_what_it_does_instead() {
    let env = TestEnv::new();
    some_files(&env);
    for (args, word) in [
        (&["-avz"][..], "compress"),
        (&["-e", "ssh"][..], "remote shell"),
        (&["--inplace"][..], "temporary name"),
        (&["--backup"][..], "--backup-dir"),
    ] {
        let out = env.copy(args);
        assert_code(&out, 2);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(word), "{args:?}: {err}");
        assert!(!env.dst.exists(), "nothing written");
    }
    // A value that only looks like one of those flags is a value.
    assert_code(&env.copy(&["--exclude", "-z", "-q"]), 0);
}

#[test]
fn the_last_of_a_repeated_option_wins() {
    let env = TestEnv::new();
    some_files(&env);
    let (out, v) = env.copy_json(&["-j", "1", "-j", "3"]);
    assert_code(&out, 0);
    assert_eq!(v["workers"], 3, "{v}");
}

#[test]
fn delete_excluded_implies_delete_and_max_delete_alone_is_harmless() {
    let env = TestEnv::new();
    some_files(&env);
    fs::create_dir_all(&env.dst).unwrap();
    fs::write(env.dst.join("extra"), b"x").unwrap();
    assert_code(&env.copy(&["--max-delete", "5"]), 0);
    assert!(
        env.dst.join("extra").exists(),
        "no --delete, nothing deleted"
    );
    assert_code(&env.copy(&["--delete-excluded"]), 0);
    assert!(!env.dst.join("extra").exists(), "--delete-excluded deletes");
}

#[test]
fn sizes_take_rsyncs_units_everywhere() {
    let env = TestEnv::new();
    fs::write(env.src.join("big"), vec![5u8; 3 << 20]).unwrap();
    let (out, v) = env.copy_json(&["--chunk-bytes", "1M", "-j", "2"]);
    assert_code(&out, 0);
    assert_eq!(v["bytes_copied"], 3 << 20, "{v}");
    let out = env.copy(&["--chunk-bytes", "1X"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("1X"), "{}", explain(&out));
}

#[test]
fn the_log_file_names_every_change_by_default_and_quiet_verbose_is_the_cron_case() {
    let env = TestEnv::new();
    some_files(&env);
    fs::create_dir_all(&env.dst).unwrap();
    fs::write(env.dst.join("extra"), b"x").unwrap();
    let log = env.path("run.log");
    let out = env.copy(&["--delete", "-q", "-v", "--log-file", log.to_str().unwrap()]);
    assert_code(&out, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "quiet console");
    let text = fs::read_to_string(&log).unwrap();
    for line in [">f+++++++++ d/f", "cd+++++++++ d/", "*deleting   extra"] {
        assert!(text.contains(line), "{line:?} not in the log:\n{text}");
    }
    assert!(
        !text.contains("Some(") && !text.contains("Differences {"),
        "{text}"
    );
    let bad = env.path("no-such-dir/x/run.log");
    fs::write(env.path("no-such-dir"), b"a file, not a directory").unwrap();
    let out = env.copy(&["--log-file", bad.to_str().unwrap()]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("log file"), "{}", explain(&out));
}
