//! Tree blobs: one directory's entries (format-spec/tree.md).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::BlobId;
use crate::format::chunklist::Content;

/// Raw bytes of a name or path: JSON string when valid UTF-8, else `{"b64": …}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawName(pub Vec<u8>);

impl RawName {
    pub fn from_os(s: &OsStr) -> Self {
        RawName(s.as_bytes().to_vec())
    }
    pub fn as_os(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawNameRepr {
    Text(String),
    Bytes { b64: String },
}

impl Serialize for RawName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => RawNameRepr::Text(t.to_owned()),
            Err(_) => RawNameRepr::Bytes {
                b64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match RawNameRepr::deserialize(d)? {
            RawNameRepr::Text(t) => Ok(RawName(t.into_bytes())),
            RawNameRepr::Bytes { b64 } => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(RawName)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: RawName,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits, including setuid, setgid and sticky (mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<BlobId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<BlobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RawName>,
}

impl Node {
    pub fn content(&self) -> Content {
        Content {
            chunks: self.chunks.clone(),
            lists: self.lists.clone(),
        }
    }
    pub fn set_content(&mut self, c: Content) {
        self.chunks = c.chunks;
        self.lists = c.lists;
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// A name a directory entry may have: not empty, not `.` or `..`, no `/` or NUL.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::corrupt(format!(
            "tree holds an invalid file name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tree serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Tree> {
        let tree: Tree = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("tree is not valid: {e}")))?;
        tree.check()?;
        Ok(tree)
    }

    /// Names valid and strictly ascending; fields consistent with each kind.
    pub fn check(&self) -> Result<()> {
        for (i, n) in self.nodes.iter().enumerate() {
            check_name(&n.name.0)?;
            if i > 0 && self.nodes[i - 1].name >= n.name {
                return Err(Error::corrupt("tree names are not strictly sorted"));
            }
            if n.mode > 0o7777 {
                return Err(Error::corrupt("tree node mode has bits outside 0o7777"));
            }
            n.content().check()?;
            let has_content = !n.chunks.is_empty() || !n.lists.is_empty();
            let ok = match n.kind {
                NodeKind::File => n.subtree.is_none() && n.target.is_none(),
                NodeKind::Dir => n.subtree.is_some() && n.target.is_none() && !has_content,
                NodeKind::Symlink => n.target.is_some() && n.subtree.is_none() && !has_content,
                NodeKind::Fifo => n.target.is_none() && n.subtree.is_none() && !has_content,
            };
            if !ok {
                return Err(Error::corrupt(format!(
                    "tree node {:?} has fields that do not fit its type",
                    n.name.lossy()
                )));
            }
        }
        Ok(())
    }
}
