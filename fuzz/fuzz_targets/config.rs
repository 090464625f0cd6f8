//! The config file: `read_header` and `decode` of arbitrary bytes with a fixed
//! key; authenticated configs around arbitrary JSON; encode → decode.
#![no_main]

use coffre::format::config::{self, HEADER_LEN, MAGIC};
use coffre::format::envelope::{self, Binding, ObjectType};
use coffre::format::FORMAT_VERSION;
use coffre_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_forge();
    let key = key();

    // 1. Arbitrary bytes as a config file.
    match config::read_header(data) {
        Ok(id) => {
            assert_eq!(&data[..8], MAGIC);
            assert_eq!(data[8], FORMAT_VERSION);
            assert_eq!(id.0, data[9..HEADER_LEN]);
        }
        Err(e) => assert_corrupt(&e),
    }
    match config::decode(&key, data) {
        Ok(cfg) => {
            cfg.check().expect("decode accepted a config that check rejects");
            assert!(config::decode(&other_key(), data).is_err());
        }
        Err(e) => assert_corrupt(&e),
    }

    // 2. A config whose authenticated part is the input (JSON or not).
    let mut file = Vec::new();
    file.extend_from_slice(MAGIC);
    file.push(FORMAT_VERSION);
    file.extend_from_slice(&REPO_ID.0);
    let b = Binding { repo_id: &REPO_ID, object_type: ObjectType::Config, object_id: &ZERO_ID };
    file.extend(envelope::seal(&key, b, data, Some(3), Some(NONCE)));
    assert_eq!(config::read_header(&file).unwrap(), REPO_ID);
    match config::decode(&key, &file) {
        Ok(cfg) => {
            cfg.check().expect("decode accepted a config that check rejects");
            // 3. encode → decode round trip.
            let bytes = config::encode(&key, &REPO_ID, &cfg, Some(NONCE));
            assert_eq!(config::read_header(&bytes).unwrap(), REPO_ID);
            let again = config::decode(&key, &bytes).expect("re-decoding an encoded config failed");
            assert_eq!(again, cfg, "config changed in encode → decode");
            assert!(config::decode(&other_key(), &bytes).is_err());
        }
        Err(e) => assert_corrupt(&e),
    }
});
