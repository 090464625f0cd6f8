//! `Tree::decode` on arbitrary bytes; what decodes must survive
//! encode → decode unchanged, and encode must be stable.
#![no_main]

use coffre::format::tree::Tree;
use coffre_fuzz::assert_corrupt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Tree::decode(data) {
        Ok(t) => {
            let bytes = t.encode();
            let again = Tree::decode(&bytes).expect("re-decoding an encoded tree failed");
            assert_eq!(again, t, "tree changed in encode → decode");
            assert_eq!(again.encode(), bytes, "tree encoding is not stable");
        }
        Err(e) => assert_corrupt(&e),
    }
});
