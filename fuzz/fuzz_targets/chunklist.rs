//! `chunklist::decode` on arbitrary bytes (the encoding is canonical, so what
//! decodes must re-encode to the same bytes), and encode → decode of ids
//! taken from the input.
#![no_main]

use coffre::format::BlobId;
use coffre::format::chunklist::{self, LIST_READ_MAX};
use coffre_fuzz::assert_corrupt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match chunklist::decode(data) {
        Ok(ids) => {
            assert!(!ids.is_empty() && ids.len() <= LIST_READ_MAX);
            assert_eq!(chunklist::encode(&ids), data, "chunk list encoding is not canonical");
            assert_eq!(chunklist::decode(&chunklist::encode(&ids)).unwrap(), ids);
        }
        Err(e) => assert_corrupt(&e),
    }

    let ids: Vec<BlobId> = data
        .chunks_exact(32)
        .map(|c| BlobId(c.try_into().unwrap()))
        .collect();
    let bytes = chunklist::encode(&ids);
    assert_eq!(bytes.len(), 4 + 32 * ids.len());
    match chunklist::decode(&bytes) {
        Ok(back) => assert_eq!(back, ids, "chunk list round trip"),
        Err(e) => {
            assert!(ids.is_empty(), "a list of {} ids did not decode: {e:?}", ids.len());
            assert_corrupt(&e);
        }
    }
});
