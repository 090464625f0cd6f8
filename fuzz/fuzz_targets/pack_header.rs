//! Pack headers: arbitrary pack bytes; entries built from the input, encoded
//! and decoded back; and authenticated headers around arbitrary plaintexts,
//! checked against a reference decoder written from format-spec/pack.md.
#![no_main]

use coffre::format::envelope::{self, Binding, OVERHEAD, ObjectType};
use coffre::format::pack::{self, ENTRY_LEN, MAX_ENTRIES, PackEntry};
use coffre::format::{BlobId, RepoId};
use coffre_fuzz::*;
use libfuzzer_sys::fuzz_target;

/// Build the pack in memory only up to this many bytes of fake blobs.
const MAX_PACK: u64 = 4 << 20;

fn header_binding() -> Binding<'static> {
    Binding { repo_id: &REPO_ID, object_type: ObjectType::PackHeader, object_id: &ZERO_ID }
}

/// The spec's reading of a header plaintext, given where the header starts.
fn reference_decode(plain: &[u8], header_offset: u64) -> Option<Vec<PackEntry>> {
    let count = u32::from_le_bytes(plain.get(..4)?.try_into().unwrap()) as usize;
    if count > MAX_ENTRIES || plain.len() - 4 != count * ENTRY_LEN {
        return None;
    }
    let mut out = Vec::new();
    let mut offset = 0u64;
    for raw in plain[4..].chunks_exact(ENTRY_LEN) {
        let blob_type = match raw[0] {
            0x10 => ObjectType::Data,
            0x11 => ObjectType::Tree,
            0x12 => ObjectType::ChunkList,
            _ => return None,
        };
        let length = u32::from_le_bytes(raw[33..37].try_into().unwrap());
        if (length as usize) < OVERHEAD {
            return None;
        }
        out.push(PackEntry {
            blob_type,
            id: BlobId(raw[1..33].try_into().unwrap()),
            offset,
            length,
            raw_length: u32::from_le_bytes(raw[37..41].try_into().unwrap()),
        });
        offset += length as u64;
    }
    (offset == header_offset).then_some(out)
}

fn check_decoded(pack_len: usize, got: &[PackEntry]) {
    let mut at = 0u64;
    for e in got {
        assert!(e.blob_type.is_blob());
        assert_eq!(e.offset, at, "entries do not tile the pack");
        assert!(e.length as usize >= OVERHEAD);
        at += e.length as u64;
    }
    assert!(at + OVERHEAD as u64 + 4 <= pack_len as u64);
}

fuzz_target!(|data: &[u8]| {
    check_forge();
    let key = key();

    // 1. Arbitrary bytes as a whole pack.
    match pack::decode_pack_header(&key, &REPO_ID, data) {
        Ok(entries) => check_decoded(data.len(), &entries),
        Err(e) => assert_corrupt(&e),
    }
    // header_range on an arbitrary size and trailer.
    if data.len() >= 12 {
        let size = u64::from_le_bytes(data[..8].try_into().unwrap());
        let trailer: [u8; 4] = data[8..12].try_into().unwrap();
        match pack::header_range(size, &trailer) {
            Ok((off, len)) => {
                assert_eq!(len, u32::from_le_bytes(trailer) as u64);
                assert!(len >= OVERHEAD as u64);
                assert_eq!(off.checked_add(len).and_then(|x| x.checked_add(4)), Some(size));
            }
            Err(e) => assert_corrupt(&e),
        }
    }

    // 2. Entries from the input → encode_header → pack → decode.
    let mut r = Bytes::new(data);
    let flags = r.u8();
    let mut entries = Vec::new();
    let mut offset = 0u64;
    while r.len() >= ENTRY_LEN {
        let blob_type = BLOB_TYPES[r.u8() as usize % BLOB_TYPES.len()];
        let id = BlobId(r.array());
        let mut length = r.u32();
        if flags & 1 == 0 {
            length = OVERHEAD as u32 + length % 4096; // small packs, built in memory
        }
        let length = length.max(OVERHEAD as u32);
        let raw_length = r.u32();
        entries.push(PackEntry { blob_type, id, offset, length, raw_length });
        offset += length as u64;
    }
    let trailer = pack::encode_header(&key, &REPO_ID, &entries, Some(NONCE));
    let header_len = trailer.len() - 4;
    assert_eq!(
        u32::from_le_bytes(trailer[header_len..].try_into().unwrap()) as usize,
        header_len
    );
    let pack_size = offset + trailer.len() as u64;
    let (off, len) = pack::header_range(pack_size, &trailer[header_len..].try_into().unwrap())
        .expect("header_range rejects a pack we wrote");
    assert_eq!((off, len), (offset, header_len as u64));
    let decoded = pack::decode_header(&key, &REPO_ID, &trailer[..header_len], offset)
        .expect("decode_header rejects a header we wrote");
    assert_eq!(decoded, entries, "pack header round trip");
    if offset <= MAX_PACK {
        // Fake blobs (their content is not looked at) followed by the header.
        let mut pack_bytes = vec![0xa5u8; offset as usize];
        pack_bytes.extend_from_slice(&trailer);
        let decoded = pack::decode_pack_header(&key, &REPO_ID, &pack_bytes)
            .expect("decode_pack_header rejects a pack we wrote");
        assert_eq!(decoded, entries, "pack round trip");
        // The same header at the wrong place, or for another repository, fails.
        pack_bytes.insert(0, 0);
        assert!(pack::decode_pack_header(&key, &REPO_ID, &pack_bytes).is_err());
        pack_bytes.remove(0);
        let other_repo = RepoId([0x42; 16]);
        assert!(pack::decode_pack_header(&key, &other_repo, &pack_bytes).is_err());
    }
    assert!(pack::decode_header(&key, &REPO_ID, &trailer[..header_len], offset + 1).is_err());

    // 3. An authenticated header around an arbitrary plaintext (level from
    //    the flags so both codecs are used), against the reference decoder.
    let level = if flags & 2 == 0 { None } else { Some(3) };
    let plain = &data[1.min(data.len())..];
    let sealed = envelope::seal(&key, header_binding(), plain, level, Some(NONCE));
    let claimed = reference_decode(plain, 0)
        .map(|_| 0)
        .or_else(|| {
            // Try the offset the entries themselves add up to.
            let n = plain.len().checked_sub(4)? / ENTRY_LEN;
            let sum: u64 = plain[4..4 + n * ENTRY_LEN]
                .chunks_exact(ENTRY_LEN)
                .map(|raw| u32::from_le_bytes(raw[33..37].try_into().unwrap()) as u64)
                .sum();
            Some(sum)
        })
        .unwrap_or(0);
    let want = reference_decode(plain, claimed);
    match (pack::decode_header(&key, &REPO_ID, &sealed, claimed), want) {
        (Ok(got), Some(want)) => assert_eq!(got, want),
        (Err(e), None) => assert_corrupt(&e),
        (got, want) => panic!("decode_header and the spec disagree: {got:?} vs {want:?}"),
    }
});
