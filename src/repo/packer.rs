//! Collects sealed blobs into pack files (format-spec/pack.md).
//!
//! Adding is cheap and happens under a lock; a full pack comes out as a
//! [`PackBatch`] that the backup's pack writer thread hashes, writes, fsyncs
//! and indexes while the workers keep going.

use crate::error::Result;
use crate::format::pack::{self, PackEntry};
use crate::format::{BlobId, ObjectType, PackId};
use crate::repo::{Repo, pack_path};

/// A pack that is durable and indexed.
pub struct FlushedPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<BlobId>,
}

/// Sealed blobs waiting to be written as one pack.
pub struct PackBatch {
    blobs: Vec<(PackEntry, Vec<u8>)>,
}

#[derive(Default)]
pub struct Packer {
    blobs: Vec<(PackEntry, Vec<u8>)>,
    bytes: usize,
}

impl Packer {
    /// Add a sealed blob; returns a full batch to write once `target` bytes are pending.
    pub fn add(
        &mut self,
        ty: ObjectType,
        id: BlobId,
        raw_length: u32,
        sealed: Vec<u8>,
        target: usize,
    ) -> Option<PackBatch> {
        let entry = PackEntry {
            blob_type: ty,
            id,
            offset: 0,
            length: sealed.len() as u32,
            raw_length,
        };
        self.bytes += sealed.len();
        self.blobs.push((entry, sealed));
        if self.bytes >= target {
            self.take()
        } else {
            None
        }
    }

    /// Whatever is pending, as a batch.
    pub fn take(&mut self) -> Option<PackBatch> {
        self.bytes = 0;
        if self.blobs.is_empty() {
            return None;
        }
        Some(PackBatch {
            blobs: std::mem::take(&mut self.blobs),
        })
    }
}

impl PackBatch {
    /// Write the blobs as one pack, make it durable, then index it.
    pub fn write(self, repo: &Repo) -> Result<FlushedPack> {
        self.write_inner(repo, false)
    }

    /// Like `write`, for prune: the blobs' index locations move to the new
    /// pack (they were elsewhere until now).
    pub fn write_relocating(self, repo: &Repo) -> Result<FlushedPack> {
        self.write_inner(repo, true)
    }

    fn write_inner(mut self, repo: &Repo, relocate: bool) -> Result<FlushedPack> {
        // sorted by id: the order in the pack says nothing about the input
        self.blobs.sort_by_key(|b| b.0.id);
        self.blobs.dedup_by(|a, b| a.0.id == b.0.id);
        let mut offset = 0u64;
        let mut entries = Vec::with_capacity(self.blobs.len());
        for (e, data) in &mut self.blobs {
            e.offset = offset;
            offset += data.len() as u64;
            entries.push(*e);
        }
        let header = pack::encode_header(&repo.keys().encryption, repo.id(), &entries, None);
        let size = offset + header.len() as u64;
        let mut parts: Vec<Vec<u8>> = self.blobs.into_iter().map(|(_, d)| d).collect();
        parts.push(header);
        let mut hasher = blake3::Hasher::new();
        for p in &parts {
            hasher.update(p);
        }
        let id = PackId(*hasher.finalize().as_bytes());
        // handed over: each blob is freed once written, not held through the
        // fsync (a backup has up to three packs in memory: filling, waiting,
        // being written)
        repo.storage().write_owned(&pack_path(&id), parts)?;
        if relocate {
            repo.index().relocate_to_pack(&id, size, &entries)?;
        } else {
            repo.index().add_pack(&id, size, &entries)?;
        }
        Ok(FlushedPack {
            id,
            size,
            blobs: entries.iter().map(|e| e.id).collect(),
        })
    }
}
