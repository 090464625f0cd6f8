//! Reading an entry back without writing it anywhere: every chunk is
//! fetched, authenticated, decompressed and re-hashed (`restore --dry-run`,
//! drills).

use crate::error::Result;
use crate::format::BlobId;
use crate::format::ObjectType;
use crate::format::snapshot::{Entry, EntryKind};
use crate::format::tree::Tree;
use crate::pipeline::{Progress, restore_stream};
use crate::repo::Repo;

/// Verify every byte of `entry`; returns the plaintext bytes checked.
pub fn verify_entry(repo: &Repo, entry: &Entry, progress: &dyn Progress) -> Result<u64> {
    match entry.kind {
        EntryKind::Stream => restore_stream(repo, &entry.content(), &mut std::io::sink(), progress),
        EntryKind::Tree => {
            let index = repo.index_reader()?;
            let mut total = 0;
            let mut stack: Vec<BlobId> = entry.tree.iter().copied().collect();
            while let Some(id) = stack.pop() {
                let tree = Tree::decode(&repo.read_blob(&index, ObjectType::Tree, &id)?)?;
                for n in &tree.nodes {
                    if let Some(sub) = n.subtree {
                        stack.push(sub);
                    }
                    let content = n.content();
                    if !content.chunks.is_empty() || !content.lists.is_empty() {
                        total += restore_stream(repo, &content, &mut std::io::sink(), progress)?;
                    }
                }
            }
            Ok(total)
        }
    }
}

/// The node at `path` (relative, `/`-separated) inside a tree entry, for
/// partial restores. Returns the entry narrowed to it: a tree entry for a
/// directory, a stream entry for a regular file.
pub fn narrow_entry(repo: &Repo, entry: &Entry, path: &std::path::Path) -> Result<Entry> {
    use crate::error::Error;
    use crate::format::tree::NodeKind;
    use std::os::unix::ffi::OsStrExt;
    let not_found = || {
        Error::not_found(format!("{} has no path {}", entry.name, path.display())).with_hint(
            format!("list its files with `coffre ls --name {}`", entry.name),
        )
    };
    let mut tree = entry.tree.ok_or_else(not_found)?;
    let index = repo.index_reader()?;
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return Ok(entry.clone());
    }
    for (i, part) in parts.iter().enumerate() {
        let t = Tree::decode(&repo.read_blob(&index, ObjectType::Tree, &tree)?)?;
        let node = t
            .nodes
            .into_iter()
            .find(|n| n.name.as_os().as_bytes() == part.as_bytes())
            .ok_or_else(not_found)?;
        let last = i + 1 == parts.len();
        match (node.kind, last) {
            (NodeKind::Dir, false) => tree = node.subtree.ok_or_else(not_found)?,
            (NodeKind::Dir, true) => {
                let mut e = entry.clone();
                e.tree = node.subtree;
                e.size = 0;
                e.root = Some(node);
                return Ok(e);
            }
            (NodeKind::File, true) => {
                let mut e = entry.clone();
                e.kind = EntryKind::Stream;
                e.tree = None;
                e.root = None;
                e.size = node.size;
                e.chunks = node.chunks;
                e.lists = node.lists;
                return Ok(e);
            }
            _ => return Err(not_found()),
        }
    }
    Err(not_found())
}
