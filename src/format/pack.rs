//! Pack files (format-spec/pack.md).
//!
//! ```text
//! pack   = blob_1 || … || blob_n || header || header_len[4]
//! blob_i = envelope(type = data | tree | chunk list, id = blob id)
//! header = envelope(type = pack header, id = 0^32) of
//!          count[4] || entry_1 || … || entry_n
//! entry  = type[1] || blob_id[32] || length[4] || raw_length[4]
//! ```
//! Blobs are contiguous in header order from offset 0, sorted by blob id, so
//! their order says nothing about the order of the data they came from. The
//! header sits at the end so a pack can be written as one stream.

use crate::crypto::SecretKey;
use crate::error::{Error, Result};
use crate::format::envelope::{self, Binding, OVERHEAD, ObjectType};
use crate::format::{BlobId, RepoId};

pub const ENTRY_LEN: usize = 1 + 32 + 4 + 4;
/// A pack header may describe at most this many blobs.
pub const MAX_ENTRIES: usize = 1 << 20;
const ZERO_ID: [u8; 32] = [0; 32];

/// One blob as described by a pack header, with its offset worked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub blob_type: ObjectType,
    pub id: BlobId,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
}

fn header_binding(repo_id: &RepoId) -> Binding<'_> {
    Binding {
        repo_id,
        object_type: ObjectType::PackHeader,
        object_id: &ZERO_ID,
    }
}

/// Encode the header trailer (`header || header_len`) for these entries.
pub fn encode_header(
    key: &SecretKey,
    repo_id: &RepoId,
    entries: &[PackEntry],
    nonce: Option<[u8; 24]>,
) -> Vec<u8> {
    let mut plain = Vec::with_capacity(4 + entries.len() * ENTRY_LEN);
    plain.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        plain.push(e.blob_type as u8);
        plain.extend_from_slice(&e.id.0);
        plain.extend_from_slice(&e.length.to_le_bytes());
        plain.extend_from_slice(&e.raw_length.to_le_bytes());
    }
    let mut out = envelope::seal(key, header_binding(repo_id), &plain, Some(3), nonce);
    let len = out.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// Where the header envelope sits, from the last 4 bytes and the pack size.
pub fn header_range(pack_size: u64, trailer: &[u8; 4]) -> Result<(u64, u64)> {
    let len = u32::from_le_bytes(*trailer) as u64;
    if pack_size < 4 + OVERHEAD as u64 {
        return Err(Error::corrupt(format!(
            "pack is truncated ({pack_size} bytes)"
        )));
    }
    if len < OVERHEAD as u64 || len > pack_size - 4 {
        return Err(Error::corrupt(format!(
            "pack header length {len} does not fit a pack of {pack_size} bytes"
        )));
    }
    Ok((pack_size - 4 - len, len))
}

/// Decode a header envelope found at `header_offset` in a pack; checks that the
/// entries tile the data region exactly.
pub fn decode_header(
    key: &SecretKey,
    repo_id: &RepoId,
    header: &[u8],
    header_offset: u64,
) -> Result<Vec<PackEntry>> {
    let cap = 4 + MAX_ENTRIES * ENTRY_LEN;
    let plain = envelope::open(key, header_binding(repo_id), header, cap)?;
    if plain.len() < 4 {
        return Err(Error::corrupt("pack header is truncated"));
    }
    let count = u32::from_le_bytes(plain[..4].try_into().unwrap()) as usize;
    if count > MAX_ENTRIES || plain.len() != 4 + count * ENTRY_LEN {
        return Err(Error::corrupt(format!(
            "pack header says {count} entries but holds {} bytes",
            plain.len()
        )));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset = 0u64;
    for raw in plain[4..].chunks_exact(ENTRY_LEN) {
        let blob_type = ObjectType::from_byte(raw[0])
            .filter(|t| t.is_blob())
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "pack header names unknown blob type {:#04x}",
                    raw[0]
                ))
            })?;
        let id = BlobId(raw[1..33].try_into().unwrap());
        let length = u32::from_le_bytes(raw[33..37].try_into().unwrap());
        let raw_length = u32::from_le_bytes(raw[37..41].try_into().unwrap());
        if (length as usize) < OVERHEAD {
            return Err(Error::corrupt(format!(
                "pack header: blob {} has impossible length {length}",
                id.short()
            )));
        }
        entries.push(PackEntry {
            blob_type,
            id,
            offset,
            length,
            raw_length,
        });
        offset += length as u64;
    }
    if offset != header_offset {
        return Err(Error::corrupt(format!(
            "pack header describes {offset} bytes of blobs but the header starts at {header_offset}"
        )));
    }
    Ok(entries)
}

/// Decode the header of a whole pack held in memory.
pub fn decode_pack_header(
    key: &SecretKey,
    repo_id: &RepoId,
    pack: &[u8],
) -> Result<Vec<PackEntry>> {
    if pack.len() < 4 {
        return Err(Error::corrupt("pack is truncated"));
    }
    let trailer: [u8; 4] = pack[pack.len() - 4..].try_into().unwrap();
    let (off, len) = header_range(pack.len() as u64, &trailer)?;
    decode_header(key, repo_id, &pack[off as usize..(off + len) as usize], off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_round_trip(lens in proptest::collection::vec((43u32..5000, 0u32..9000, any::<[u8; 32]>()), 1..50)) {
            let key = SecretKey::from_bytes([5; 32]);
            let repo = RepoId([6; 16]);
            let mut offset = 0u64;
            let entries: Vec<PackEntry> = lens.iter().map(|(len, raw, id)| {
                let e = PackEntry { blob_type: ObjectType::Data, id: BlobId(*id), offset, length: *len, raw_length: *raw };
                offset += *len as u64;
                e
            }).collect();
            let mut pack = vec![0u8; offset as usize];
            pack.extend(encode_header(&key, &repo, &entries, None));
            prop_assert_eq!(decode_pack_header(&key, &repo, &pack).unwrap(), entries);
            // one byte more or less of blob data breaks the tiling
            let mut longer = vec![0u8];
            longer.extend(&pack);
            prop_assert!(decode_pack_header(&key, &repo, &longer).is_err());
        }
    }
}
