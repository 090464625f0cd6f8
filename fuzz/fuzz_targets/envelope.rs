//! `envelope::open` on arbitrary bytes, `seal` → `open` round trips, and
//! `open` of authenticated envelopes around arbitrary plaintexts.
#![no_main]

use coffre::compress::{self, CODEC_NONE, CODEC_ZSTD};
use coffre::format::envelope::{self, Binding, OVERHEAD};
use coffre_fuzz::*;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    check_forge();
    let key = key();

    // 1. Arbitrary bytes as an envelope. Take the type from the envelope's own
    //    type byte so that mutated seeds get as far as authentication.
    let ty = data
        .get(1)
        .and_then(|b| coffre::format::ObjectType::from_byte(*b))
        .unwrap_or(coffre::format::ObjectType::Data);
    match envelope::open(&key, binding(ty), data, CAP) {
        Ok(plain) => {
            assert!(plain.len() <= CAP);
            // Authentic: the same bytes must fail under any other binding or key.
            assert!(envelope::open(&other_key(), binding(ty), data, CAP).is_err());
            let other_id = [0xffu8; 32];
            let b = Binding { object_id: &other_id, ..binding(ty) };
            assert!(envelope::open(&key, b, data, CAP).is_err());
        }
        Err(e) => assert_corrupt(&e),
    }

    // 2. seal → open round trip of an arbitrary plaintext.
    let mut r = Bytes::new(data);
    let ctl = r.u8();
    let flip = r.u32();
    let plaintext = r.rest();
    let ty = ALL_TYPES[(ctl as usize >> 2) % ALL_TYPES.len()];
    let level = match ctl & 3 {
        0 => None,
        1 => Some(1),
        2 => Some(3),
        _ => Some(-1),
    };
    let sealed = envelope::seal(&key, binding(ty), plaintext, level, Some(NONCE));
    assert_eq!(sealed[0], coffre::format::FORMAT_VERSION);
    assert_eq!(sealed[1], ty as u8);
    assert!(sealed.len() <= OVERHEAD + plaintext.len(), "seal grew the plaintext");
    let opened = envelope::open(&key, binding(ty), &sealed, plaintext.len())
        .expect("seal → open failed");
    assert_eq!(opened, plaintext, "seal → open changed the plaintext");
    if !plaintext.is_empty() {
        let e = envelope::open(&key, binding(ty), &sealed, plaintext.len() - 1)
            .expect_err("open ignored its cap");
        assert_corrupt(&e);
    }
    // Any single bit flip must be detected.
    let mut bad = sealed.clone();
    let bit = flip as usize % (bad.len() * 8);
    bad[bit / 8] ^= 1 << (bit % 8);
    assert!(envelope::open(&key, binding(ty), &bad, CAP).is_err(), "bit flip not detected");
    // A different type must not open it.
    let ty2 = ALL_TYPES[((ctl as usize >> 2) + 1) % ALL_TYPES.len()];
    assert!(envelope::open(&key, binding(ty2), &sealed, CAP).is_err());

    // 3. An authenticated envelope around arbitrary `codec || body`.
    let ty = ALL_TYPES[data.first().map_or(0, |b| *b as usize) % ALL_TYPES.len()];
    let forged = forge_envelope(&key, &REPO_ID, ty, &OBJECT_ID, data);
    let got = envelope::open(&key, binding(ty), &forged, CAP);
    match (data.split_first(), &got) {
        (None, Err(e)) => assert_corrupt(e), // shorter than OVERHEAD
        (None, Ok(_)) => panic!("an envelope without a codec byte opened"),
        (Some((&CODEC_NONE, body)), _) => {
            if body.len() <= CAP {
                assert_eq!(got.as_deref().ok(), Some(body));
            } else {
                assert_corrupt(got.as_ref().unwrap_err());
            }
        }
        (Some((&CODEC_ZSTD, body)), _) => {
            // Must agree with the decompressor itself.
            match (compress::decompress(body, CAP), &got) {
                (Ok(a), Ok(b)) => assert_eq!(&a, b),
                (Err(_), Err(e)) => assert_corrupt(e),
                (a, b) => panic!("open and decompress disagree: {a:?} vs {b:?}"),
            }
        }
        (Some(_), Ok(_)) => panic!("unknown codec accepted"),
        (Some(_), Err(e)) => assert_corrupt(e),
    }
});
