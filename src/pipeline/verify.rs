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
