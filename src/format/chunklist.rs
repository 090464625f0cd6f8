//! Chunk-list blobs and the content of a file or stream (format-spec/tree.md).
//!
//! A content is the ordered list of data-chunk ids whose plaintexts
//! concatenate to the file or stream. Short lists are stored inline in the
//! tree node or snapshot entry (`chunks`); long ones are split into chunk-list
//! blobs of at most [`LIST_MAX`] ids each (`lists`), so no object grows with
//! the size of the input.
//!
//! ```text
//! chunk list = count[4] || blob_id[32] * count      (1 <= count <= 65536)
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::BlobId;

/// Writers put at most this many ids inline or in one chunk-list blob.
pub const LIST_MAX: usize = 4096;
/// Readers accept at most this many ids in one chunk-list blob.
pub const LIST_READ_MAX: usize = 65536;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<BlobId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<BlobId>,
}

impl Content {
    pub fn check(&self) -> Result<()> {
        if !self.chunks.is_empty() && !self.lists.is_empty() {
            return Err(Error::corrupt(
                "content has both inline chunks and chunk lists",
            ));
        }
        if self.chunks.len() > LIST_READ_MAX {
            return Err(Error::corrupt("content has too many inline chunks"));
        }
        Ok(())
    }
}

pub fn encode(ids: &[BlobId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 32 * ids.len());
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.0);
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<BlobId>> {
    if bytes.len() < 4 {
        return Err(Error::corrupt("chunk list is truncated"));
    }
    let count = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    if count == 0 || count > LIST_READ_MAX || bytes.len() != 4 + 32 * count {
        return Err(Error::corrupt(format!(
            "chunk list says {count} ids but holds {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes[4..]
        .chunks_exact(32)
        .map(|c| BlobId(c.try_into().unwrap()))
        .collect())
}
