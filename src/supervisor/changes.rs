//! Saying what a run changes, entry by entry: `-i` prints rsync's
//! `YXcstpoguax` lines on stdout (so operators read it without learning a
//! new format), `--json-lines` writes one JSON object per change and the
//! summary object last. The walk, the deletion pass and the hard-link pass
//! record here as they decide; a dry run records what it would do.

use crate::error::{Error, Result};
use crate::stats::Summary;
use crate::util::{escape_bytes, rsync_escape};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// What happened to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// It did not exist (or had another type) and was created.
    Created,
    /// Its data was written again.
    Updated,
    /// Only its metadata was fixed.
    Repaired,
    Deleted,
    /// Made a hard link to an entry placed before.
    Linked,
    /// A name that exists becomes (or stays) a link to the group's
    /// leader, whose inode changes (or which was a copy of its own).
    Relinked,
    /// Hard-linked from a `--link-dest` directory, unchanged there: no
    /// `-i` line (rsync prints one only under `-ii`), a JSON line.
    LinkedFromBasis,
    /// Copied with a basis entry of the same data but other attributes
    /// (rsync's local change, `cf...p.....`).
    CopiedFromBasis,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Repaired => "repaired",
            Action::Deleted => "deleted",
            Action::Linked => "linked",
            Action::Relinked => "relinked",
            Action::LinkedFromBasis => "linked-from-basis",
            Action::CopiedFromBasis => "copied-from-basis",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Device,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Dir => 'd',
            Kind::Symlink => 'L',
            Kind::Fifo => 'S',
            Kind::Device => 'D',
        }
    }
    fn word(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Device => "device",
        }
    }
    pub fn of(ft: rustix::fs::FileType) -> Self {
        use rustix::fs::FileType as F;
        match ft {
            F::Directory => Kind::Dir,
            F::Symlink => Kind::Symlink,
            F::Fifo | F::Socket => Kind::Fifo,
            F::BlockDevice | F::CharacterDevice => Kind::Device,
            _ => Kind::File,
        }
    }
}

/// Why an entry changes: rsync's `cstpoguax` letters, by position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reasons {
    /// Content (symlink target) differs.
    pub content: bool,
    pub size: bool,
    pub mtime: bool,
    pub perms: bool,
    pub owner: bool,
    pub group: bool,
    pub acl: bool,
    pub xattrs: bool,
}

impl Reasons {
    pub fn any(&self) -> bool {
        *self != Reasons::default()
    }

    fn letters(&self) -> String {
        let flag = |on: bool, c: char| if on { c } else { '.' };
        [
            flag(self.content, 'c'),
            flag(self.size, 's'),
            flag(self.mtime, 't'),
            flag(self.perms, 'p'),
            flag(self.owner, 'o'),
            flag(self.group, 'g'),
            '.',
            flag(self.acl, 'a'),
            flag(self.xattrs, 'x'),
        ]
        .iter()
        .collect()
    }

    fn words(&self) -> Vec<&'static str> {
        let all = [
            (self.content, "content"),
            (self.size, "size"),
            (self.mtime, "mtime"),
            (self.perms, "perms"),
            (self.owner, "owner"),
            (self.group, "group"),
            (self.acl, "acl"),
            (self.xattrs, "xattrs"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, w)| *w).collect()
    }
}

/// One change to report.
pub struct Change<'a> {
    pub rel: &'a [u8],
    pub kind: Kind,
    pub action: Action,
    pub reasons: Reasons,
    /// Bytes of a regular file's data.
    pub size: Option<u64>,
    /// A symlink's target, or the first name of a hard link.
    pub target: Option<&'a [u8]>,
}

impl Change<'_> {
    /// The `-i` line, as rsync prints it (none where rsync prints none).
    pub fn itemized(&self) -> Option<String> {
        let path = rsync_escape(self.rel);
        let slash = if self.kind == Kind::Dir { "/" } else { "" };
        match self.action {
            Action::Deleted => return Some(format!("*deleting   {path}{slash}")),
            Action::LinkedFromBasis => return None,
            _ => {}
        }
        let x = self.kind.letter();
        let (y, rest) = match self.action {
            Action::Created => (self.creator(), "+++++++++".to_string()),
            Action::Linked => ('h', "+++++++++".to_string()),
            // rsync shows no change at all as spaces, not dots.
            Action::Relinked if !self.reasons.any() => ('h', " ".repeat(9)),
            Action::Relinked => ('h', self.reasons.letters()),
            Action::Updated => (self.creator(), self.reasons.letters()),
            Action::CopiedFromBasis => ('c', self.reasons.letters()),
            _ => ('.', self.reasons.letters()),
        };
        let tail = match (self.action, self.target) {
            (Action::Linked | Action::Relinked, Some(t)) => format!(" => {}", rsync_escape(t)),
            (_, Some(t)) => format!(" -> {}", rsync_escape(t)),
            _ => String::new(),
        };
        Some(format!("{y}{x}{rest} {path}{slash}{tail}"))
    }

    /// `>` for file data received, `c` for entries created locally.
    fn creator(&self) -> char {
        if self.kind == Kind::File {
            '>'
        } else {
            'c'
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "path": escape_bytes(self.rel),
            "type": self.kind.word(),
            "action": self.action.word(),
            "reasons": self.reasons.words(),
        });
        if let Some(n) = self.size {
            v["size"] = n.into();
        }
        if let Some(t) = self.target {
            v["target"] = escape_bytes(t).into();
        }
        v
    }
}

/// Where changes go.
#[derive(Default)]
pub struct Changes {
    itemize: bool,
    /// stdout carries JSON (`--json`, `--json-lines -`): the `-i` lines go
    /// to stderr, so stdout stays parseable.
    itemize_to_stderr: bool,
    json: Option<Mutex<Box<dyn Write + Send>>>,
    /// Each change goes to the log (info) too.
    log: bool,
}

impl Changes {
    /// `json_lines`: a file to create, or `-` for stdout.
    /// `log`: a log file is kept, and gets every change as rsync's log
    /// does (the itemized line, `*deleting` included).
    pub fn open(
        itemize: bool,
        (json, json_lines): (bool, Option<&Path>),
        log: bool,
    ) -> Result<Self> {
        let stdout_json = json || json_lines.is_some_and(|p| p.as_os_str() == "-");
        let lines: Option<Box<dyn Write + Send>> = match json_lines {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
            Some(p) => Some(Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| Error::io(p, e))?,
            ))),
        };
        Ok(Changes {
            itemize,
            itemize_to_stderr: stdout_json,
            json: lines.map(Mutex::new),
            log,
        })
    }

    /// Whether anyone listens (so callers skip the extra checks if not).
    pub fn on(&self) -> bool {
        self.itemize || self.json.is_some() || self.log
    }

    pub fn record(&self, c: &Change) {
        if let Some(line) = c.itemized() {
            if self.itemize && self.itemize_to_stderr {
                crate::util::err_line(&line);
            } else if self.itemize {
                crate::util::out_line(&line);
            }
            if self.log {
                // Info: in the log file by default, on the console with -v.
                log::info!(target: crate::logging::CHANGES, "{line}");
            }
        }
        if let Some(j) = &self.json {
            let mut w = j.lock().unwrap_or_else(|p| p.into_inner());
            // A write error (closed pipe, full disk) loses lines, not the copy.
            let _ = writeln!(w, "{}", c.json());
        }
    }

    /// The summary object as the last line of `--json-lines`.
    pub fn finish(&self, sm: &Summary) {
        if let Some(j) = &self.json {
            let mut w = j.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(mut v) = serde_json::to_value(sm) {
                v["type"] = "summary".into();
                let _ = writeln!(w, "{v}");
            }
            let _ = w.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: Action, kind: Kind, reasons: Reasons) -> Change<'static> {
        Change {
            rel: b"a/b",
            kind,
            action,
            reasons,
            size: Some(3),
            target: None,
        }
    }

    #[test]
    fn lines_follow_rsyncs_itemize_format() {
        let none = Reasons::default();
        assert_eq!(
            change(Action::Created, Kind::File, none)
                .itemized()
                .unwrap_or_default(),
            ">f+++++++++ a/b"
        );
        let st = Reasons {
            size: true,
            mtime: true,
            ..none
        };
        assert_eq!(
            change(Action::Updated, Kind::File, st)
                .itemized()
                .unwrap_or_default(),
            ">f.st...... a/b"
        );
        let pogx = Reasons {
            perms: true,
            owner: true,
            group: true,
            acl: true,
            xattrs: true,
            ..none
        };
        assert_eq!(
            change(Action::Repaired, Kind::File, pogx)
                .itemized()
                .unwrap_or_default(),
            ".f...pog.ax a/b"
        );
        assert_eq!(
            change(Action::Created, Kind::Dir, none)
                .itemized()
                .unwrap_or_default(),
            "cd+++++++++ a/b/"
        );
        assert_eq!(
            change(Action::Deleted, Kind::Dir, none)
                .itemized()
                .unwrap_or_default(),
            "*deleting   a/b/"
        );
        let v = change(Action::Updated, Kind::File, st).json();
        assert_eq!(v["action"], "updated");
        assert_eq!(v["reasons"], serde_json::json!(["size", "mtime"]));
        assert_eq!(v["size"], 3);
    }
}
