//! `KeyFile::parse` on arbitrary bytes (parse only: `unwrap` would run
//! Argon2); what parses must survive to_bytes → parse with equal fields.
#![no_main]

use coffre::format::keyfile::{KeyFile, MAX_LEN};
use coffre_fuzz::assert_corrupt;
use libfuzzer_sys::fuzz_target;

fn same(a: &KeyFile, b: &KeyFile) -> bool {
    a.version == b.version
        && a.id == b.id
        && a.created == b.created
        && a.host == b.host
        && a.user == b.user
        && a.kdf == b.kdf
        && a.wrapped == b.wrapped
}

fuzz_target!(|data: &[u8]| {
    match KeyFile::parse(data) {
        Ok(kf) => {
            assert!(data.len() <= MAX_LEN);
            kf.check().expect("parse accepted a key file that check rejects");
            kf.kdf.check().expect("parse accepted KDF parameters that check rejects");
            let bytes = kf.to_bytes();
            let again = KeyFile::parse(&bytes).expect("re-parsing a written key file failed");
            assert!(same(&kf, &again), "key file changed: {kf:?} vs {again:?}");
            assert_eq!(again.to_bytes(), bytes, "key file encoding is not stable");
        }
        Err(e) => assert_corrupt(&e),
    }
});
