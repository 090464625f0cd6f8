//! `LockInfo::decode` on arbitrary bytes (lock files are plaintext, and
//! anyone who can write to the storage can plant one): never panics; what
//! decodes has nothing in it that could drive a terminal, and re-encodes to
//! a lock that decodes to the same one.
#![no_main]

use coffre::repo::lock::{LockInfo, MAX_LEN};
use coffre_fuzz::assert_corrupt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match LockInfo::decode(data) {
        Ok(info) => {
            assert!(data.len() <= MAX_LEN);
            let shown = info.describe();
            assert!(
                !shown.chars().any(char::is_control),
                "a decoded lock would print a control character: {shown:?}"
            );
            let bytes = serde_json::to_vec(&info).expect("a lock encodes");
            let again = LockInfo::decode(&bytes).expect("a re-encoded lock decodes");
            assert_eq!(again.describe(), shown);
            assert_eq!(
                (again.pid, again.pid_start, again.expires, again.exclusive),
                (info.pid, info.pid_start, info.expires, info.exclusive)
            );
        }
        Err(e) => assert_corrupt(&e),
    }
});
