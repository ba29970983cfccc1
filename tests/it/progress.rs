//! The progress line as a terminal shows it: the binary runs on a real
//! pseudo-terminal of a chosen width, and a small screen model replays what
//! it wrote (carriage returns, erase-line, wrapping at the last column).

use crate::util::*;
use std::fs;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a terminal of `cols` columns shows after replaying `bytes`.
struct Screen {
    cols: usize,
    /// Lines ended by a newline.
    lines: Vec<String>,
    /// The line the cursor is on.
    current: Vec<char>,
    col: usize,
    /// How many times text ran past the last column onto a new row.
    wraps: usize,
    /// Every state the cursor line was in just before a `\r` or erase.
    frames: Vec<String>,
}

impl Screen {
    fn replay(cols: usize, bytes: &[u8]) -> Screen {
        let mut s = Screen {
            cols,
            lines: Vec::new(),
            current: Vec::new(),
            col: 0,
            wraps: 0,
            frames: Vec::new(),
        };
        let text = String::from_utf8_lossy(bytes);
        let mut it = text.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '\n' => {
                    s.lines.push(s.current.iter().collect());
                    s.current.clear();
                    s.col = 0;
                }
                '\r' => {
                    s.frames.push(s.current.iter().collect());
                    s.col = 0;
                }
                '\x1b' => {
                    // CSI: ESC [ params final-byte
                    if it.peek() == Some(&'[') {
                        it.next();
                        let mut params = String::new();
                        for p in it.by_ref() {
                            if p.is_ascii_alphabetic() || p == '@' || p == '~' {
                                if p == 'K' && params == "2" {
                                    s.frames.push(s.current.iter().collect());
                                    s.current.clear();
                                }
                                break;
                            }
                            params.push(p);
                        }
                    }
                }
                c if c.is_control() => {}
                c => {
                    if s.col >= s.cols {
                        // Auto-margin: the character lands on the next row.
                        s.wraps += 1;
                        s.lines.push(s.current.iter().collect());
                        s.current.clear();
                        s.col = 0;
                    }
                    if s.col < s.current.len() {
                        s.current[s.col] = c;
                    } else {
                        s.current.push(c);
                    }
                    s.col += 1;
                }
            }
        }
        s
    }

    fn last_line(&self) -> String {
        self.current
            .iter()
            .collect::<String>()
            .trim_end()
            .to_string()
    }
}

/// Run pcopy with stdin, stdout and stderr on a pty `cols` wide; send
/// SIGINT to it after each of `interrupts`; return all it wrote and its
/// exit code.
fn on_terminal(cols: u16, args: &[&std::ffi::OsStr], interrupts: &[Duration]) -> (Vec<u8>, i32) {
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize {
        ws_row: 24,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the two ints; the names,
    // termios and winsize pointers are null or valid for the call.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut c = Command::new(bin());
    c.args(args)
        .stdin(Stdio::from(slave.try_clone().expect("dup pty")))
        .stdout(Stdio::from(slave.try_clone().expect("dup pty")))
        .stderr(Stdio::from(slave))
        .process_group(0);
    let mut child = c.spawn().expect("spawn pcopy");
    // The command holds our copies of the slave side: while they are open
    // the reader never sees the end.
    drop(c);
    let reader = std::thread::spawn(move || {
        let mut f = fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        // EIO once the last holder of the slave side is gone.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let start = Instant::now();
    for at in interrupts {
        while start.elapsed() < *at {
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(child.id(), libc::SIGINT);
    }
    let status = child.wait().expect("wait");
    let out = reader.join().expect("reader");
    (out, status.code().unwrap_or(-1))
}

/// A progress frame has `done/found` counts (`12/300 files`, `1 MiB/3 MiB`);
/// the summary's lines and warnings have none.
fn is_frame(l: &str) -> bool {
    l.split_whitespace()
        .any(|w| w.contains('/') && w.starts_with(|c: char| c.is_ascii_digit()))
}

fn tree(t: &TestEnv, files: usize) {
    for i in 0..files {
        fs::write(t.src.join(format!("f{i:04}")), vec![i as u8; 100_000]).expect("write");
    }
}

fn args<'a>(t: &'a TestEnv, extra: &'a [&'a str]) -> Vec<&'a std::ffi::OsStr> {
    let mut a: Vec<&std::ffi::OsStr> = vec![t.src.as_os_str(), t.dst.as_os_str()];
    a.extend(extra.iter().map(std::ffi::OsStr::new));
    a
}

#[test]
fn progress_line_fits_every_width_and_never_says_nothing_as_zero() {
    let t = TestEnv::new();
    tree(&t, 200);
    for cols in [24u16, 40, 60, 100] {
        let _ = fs::remove_dir_all(&t.dst);
        // 20 MB at 10 MB/s: two seconds of frames.
        let (out, code) = on_terminal(cols, &args(&t, &["--bwlimit", "10M"]), &[]);
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
        let s = Screen::replay(cols.into(), &out);
        // The summary may wrap on a narrow terminal; the frames before it
        // must not.
        let before = out
            .windows(12)
            .position(|w| w == b"files found:")
            .expect("a summary");
        let wraps = Screen::replay(cols.into(), &out[..before]).wraps;
        let frames: Vec<&String> = s.frames.iter().filter(|f| !f.trim().is_empty()).collect();
        assert!(frames.len() >= 5, "{cols} cols: too few frames: {frames:?}");
        assert_eq!(wraps, 0, "{cols} cols: the line wrapped: {:?}", s.frames);
        for f in &frames {
            assert!(!f.contains("(counting)"), "{cols} cols: {f:?}");
            assert!(!f.contains(" 0 B/s"), "{cols} cols: a rate of zero: {f:?}");
            if f.contains("ETA 0s") {
                panic!("{cols} cols: an ETA of zero with bytes left: {f:?}");
            }
        }
        // Once the walk has counted, a bar over the bytes with a rate and an
        // ETA, where the terminal has room for them.
        if cols >= 60 {
            assert!(
                frames
                    .iter()
                    .any(|f| f.contains("%") && f.contains("/s") && f.contains("ETA")),
                "{cols} cols: no frame with a percentage, a rate and an ETA: {frames:?}"
            );
        }
        assert!(
            s.lines.iter().any(|l| l.contains("files found: 200")),
            "{cols} cols: no summary: {:?}",
            s.lines
        );
        assert_eq!(s.last_line(), "", "{cols} cols: a frame stayed on screen");
    }
}

#[test]
fn no_frame_stays_after_one_or_two_interrupts() {
    let t = TestEnv::new();
    tree(&t, 300);
    for interrupts in [
        vec![Duration::from_millis(1200)],
        vec![Duration::from_millis(1200), Duration::from_millis(1205)],
    ] {
        let _ = fs::remove_dir_all(&t.dst);
        // 30 MB at 5 MB/s: six seconds, interrupted after one.
        let (out, code) = on_terminal(80, &args(&t, &["--bwlimit", "5M"]), &interrupts);
        assert_eq!(code, 130, "{}", String::from_utf8_lossy(&out));
        let s = Screen::replay(80, &out);
        assert!(
            s.frames.iter().any(|f| f.contains("files")),
            "no frame was drawn before the interrupt: {:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(
            s.last_line(),
            "",
            "after {} interrupt(s) a frame stayed on screen: {:?}",
            interrupts.len(),
            String::from_utf8_lossy(&out)
        );
        for l in &s.lines {
            assert!(!is_frame(l), "a frame was left in the scrollback: {l:?}");
        }
    }
}
