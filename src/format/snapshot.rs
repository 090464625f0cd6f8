//! Snapshot objects (format-spec/snapshot.md).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::tree::RawName;
use crate::format::{BlobId, SnapshotId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// One byte stream: a dump, stdin, a command's stdout.
    Stream,
    /// A directory tree (or a single file, stored as a tree of one).
    Tree,
}

/// What one backup run of an entry did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub bytes_read: u64,
    /// Plaintext bytes of chunks that were not in the repository before.
    pub bytes_new: u64,
    /// Bytes those new chunks take in packs (compressed, encrypted).
    pub bytes_stored: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub dirs: u64,
    /// Files taken from the parent snapshot without reading them.
    #[serde(default)]
    pub files_unchanged: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    /// Bytes of the stream, or of all regular files in the tree.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<BlobId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<BlobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<BlobId>,
    /// The directory the tree was read from (its metadata; `subtree` = `tree`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<crate::format::tree::Node>,
    /// The absolute path the tree was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<RawName>,
    /// The snapshot whose tree of the same name served as parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// The command whose stdout is the stream (secrets removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    pub started: String,
    pub finished: String,
    pub stats: Stats,
    /// The source's own metadata (versions, positions, row counts…).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u32,
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    pub host: String,
    pub user: String,
    pub tags: Vec<String>,
    pub program: String,
    pub entries: Vec<Entry>,
    /// Some sources of the plan failed and `--allow-partial` was given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The sources that failed, when `partial`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failure>,
}

/// A source of a plan that produced no entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub name: String,
    pub kind: String,
    pub error: String,
}

/// Entry names: 1..=255 bytes of `[A-Za-z0-9._@+=-]` separated by single `/`,
/// no segment `.` or `..`.
pub fn check_entry_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._@+=-".contains(c);
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(ok_char));
    if valid {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid entry name {name:?}"))
            .with_hint("use letters, digits, '.', '_', '-', '@', '+', '=' and '/' between parts, e.g. postgres/app"))
    }
}

pub fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.len() > 255 || tag.contains(',') || tag.chars().any(char::is_control) {
        return Err(Error::usage(format!("invalid tag {tag:?}"))
            .with_hint("tags are 1..255 characters without ',' or control characters"));
    }
    Ok(())
}

impl Entry {
    /// The content of a stream entry (empty for trees).
    pub fn content(&self) -> crate::format::chunklist::Content {
        crate::format::chunklist::Content {
            chunks: self.chunks.clone(),
            lists: self.lists.clone(),
        }
    }
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot> {
        let s: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("snapshot is not valid: {e}")))?;
        s.check()?;
        Ok(s)
    }

    pub fn check(&self) -> Result<()> {
        if self.version != 1 {
            return Err(Error::corrupt(format!(
                "snapshot version {} is not supported",
                self.version
            )));
        }
        self.time_ns()?;
        if self.entries.is_empty() {
            return Err(Error::corrupt("snapshot has no entries"));
        }
        if self.partial == self.failed.is_empty() {
            return Err(Error::corrupt(
                "snapshot is partial without failed sources, or the reverse",
            ));
        }
        for (i, e) in self.entries.iter().enumerate() {
            check_entry_name(&e.name).map_err(|err| Error::corrupt(err.message().to_string()))?;
            if self.entries[..i].iter().any(|o| o.name == e.name) {
                return Err(Error::corrupt(format!(
                    "snapshot names entry {:?} twice",
                    e.name
                )));
            }
            let ok = match e.kind {
                EntryKind::Stream => {
                    e.tree.is_none() && (e.chunks.is_empty() || e.lists.is_empty())
                }
                EntryKind::Tree => {
                    e.tree.is_some()
                        && e.chunks.is_empty()
                        && e.lists.is_empty()
                        && e.root.as_ref().is_none_or(|r| {
                            r.kind == crate::format::tree::NodeKind::Dir && r.subtree == e.tree
                        })
                }
            };
            if !ok {
                return Err(Error::corrupt(format!(
                    "snapshot entry {:?} has fields that do not fit its kind",
                    e.name
                )));
            }
        }
        Ok(())
    }

    /// The snapshot time as nanoseconds since the Unix epoch.
    pub fn time_ns(&self) -> Result<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .ok_or_else(|| Error::corrupt(format!("snapshot time {:?} is not RFC 3339", self.time)))
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `snapshot` fuzz target: numbers in `meta` must survive
    /// encode → decode exactly (serde_json's `float_roundtrip`).
    #[test]
    fn fuzz_regressions_round_trip() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/snapshot");
        let mut n = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            if let Ok(s) = Snapshot::decode(&bytes) {
                assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
                n += 1;
            }
        }
        assert!(n >= 2, "regression inputs missing");
    }
}
