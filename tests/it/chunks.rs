//! Large files split into chunks copied by several workers (small chunk size
//! through PCOPY_CHUNK_BYTES so the tests stay fast).

use crate::util::*;
use std::fs;
use std::os::unix::fs::MetadataExt;

pub const CHUNK_ENV: (&str, &str) = ("PCOPY_CHUNK_BYTES", "1048576");

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One large random file (split only when it is the sole large file) plus
/// small ones.
pub fn big_tree(env: &TestEnv) {
    let mut r = Lcg::new(99);
    let data: Vec<u8> = (0..5_000_000).map(|_| r.next() as u8).collect();
    fs::write(env.src.join("big.bin"), &data).unwrap();
    set_mtime_ns(&env.src.join("big.bin"), 1_600_000_000, 123_456_789);
    gen_tree(&env.src.join("small").tap_mkdir(), 11, 50);
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn large_files_are_copied_in_chunks_exactly() {
    let env = TestEnv::new();
    big_tree(&env);
    let log = env.path("run.log");
    let mut c = env.cmd();
    c.env(CHUNK_ENV.0, CHUNK_ENV.1)
        .args(["--json", "-v", "--log-file"])
        .arg(&log)
        .arg(&env.src)
        .arg(&env.dst);
    let out = run(c);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
    let v = parse_json(&out);
    assert_eq!(v["files_failed"], 0);
    if cpus() >= 2 {
        let text = fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("copied big.bin (in chunks)"),
            "not chunked:\n{text}"
        );
    } else {
        skip(
            "large_files_are_copied_in_chunks",
            "one CPU: a single large file is not split, so chunking is not exercised",
        );
    }
    assert!(temps_under(&env.dst).is_empty());
    // A re-run skips them.
    let mut c = env.cmd();
    c.env(CHUNK_ENV.0, CHUNK_ENV.1)
        .arg("--json")
        .arg(&env.src)
        .arg(&env.dst);
    let out = run(c);
    let v = parse_json(&out);
    assert_eq!(v["files_copied"], 0, "{v}");
}

#[test]
fn a_sparse_large_file_stays_sparse_when_chunked() {
    let env = TestEnv::new();
    let f = fs::File::create(env.src.join("sparse.img")).unwrap();
    f.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"data in the middle", 40 << 20).unwrap();
    drop(f);
    let mut c = env.cmd();
    c.env(CHUNK_ENV.0, CHUNK_ENV.1).arg(&env.src).arg(&env.dst);
    assert_code(&run(c), 0);
    assert_trees_equal(&env.src, &env.dst);
    let blocks = fs::metadata(env.dst.join("sparse.img")).unwrap().blocks();
    assert!(
        blocks < 1024,
        "sparse chunked copy allocated {blocks} blocks"
    );
}
