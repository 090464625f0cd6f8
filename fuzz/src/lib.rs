//! Shared fixtures for the coffre fuzz targets and the seed generator.
//!
//! Every target uses the same fixed key, repository id and object id, so the
//! seeds written by `examples/seeds.rs` are valid (authenticated) inputs for
//! the targets that open envelopes.

use coffre::crypto::{self, SecretKey};
use coffre::format::envelope::{self, Binding, ObjectType};
use coffre::format::{FORMAT_VERSION, RepoId};
use coffre::{Error, ErrorKind};

/// The key every target opens envelopes with.
pub const KEY: [u8; 32] = *b"coffre fuzz key, not a secret!!!";
/// A different key: opening with it must always fail.
pub const OTHER_KEY: [u8; 32] = *b"another key, also not a secret!!";
pub const REPO_ID: RepoId = RepoId(*b"fuzz repository!");
pub const OBJECT_ID: [u8; 32] = *b"fuzz object id: 32 bytes exactly";
pub const NONCE: [u8; 24] = *b"fixed nonce for fuzzing!";
/// The id bound into config and pack header envelopes.
pub const ZERO_ID: [u8; 32] = [0; 32];

pub const ALL_TYPES: [ObjectType; 6] = [
    ObjectType::Config,
    ObjectType::Data,
    ObjectType::Tree,
    ObjectType::ChunkList,
    ObjectType::PackHeader,
    ObjectType::Snapshot,
];
pub const BLOB_TYPES: [ObjectType; 3] = [ObjectType::Data, ObjectType::Tree, ObjectType::ChunkList];

pub fn key() -> SecretKey {
    SecretKey::from_bytes(KEY)
}

pub fn other_key() -> SecretKey {
    SecretKey::from_bytes(OTHER_KEY)
}

pub fn binding(object_type: ObjectType) -> Binding<'static> {
    Binding {
        repo_id: &REPO_ID,
        object_type,
        object_id: &OBJECT_ID,
    }
}

/// Build an authenticated envelope around an arbitrary *plaintext*
/// (`codec[1] || body`), bypassing `envelope::seal`, which only ever writes
/// well-formed plaintexts. This reaches the codec and decompression paths of
/// `envelope::open` with bytes a key holder (or a bug) could have written.
///
/// The associated data is rebuilt here from format-spec/envelope.md:
/// `"coffre\0" || repo_id[16] || version[1] || type[1] || object_id[32]`.
/// [`check_forge`] makes sure this still agrees with the library.
pub fn forge_envelope(
    key: &SecretKey,
    repo_id: &RepoId,
    object_type: ObjectType,
    object_id: &[u8; 32],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(57);
    ad.extend_from_slice(b"coffre\0");
    ad.extend_from_slice(&repo_id.0);
    ad.push(FORMAT_VERSION);
    ad.push(object_type as u8);
    ad.extend_from_slice(object_id);

    let mut out = Vec::with_capacity(2 + 24 + plaintext.len() + 16);
    out.push(FORMAT_VERSION);
    out.push(object_type as u8);
    out.extend_from_slice(&NONCE);
    out.extend_from_slice(plaintext);
    let tag = crypto::seal_in_place(key, &NONCE, &ad, &mut out[26..]);
    out.extend_from_slice(&tag);
    out
}

/// Panics if [`forge_envelope`] no longer produces envelopes the library
/// accepts (the harness would then silently stop reaching the deep paths).
pub fn check_forge() {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let k = key();
        for ty in ALL_TYPES {
            let env = forge_envelope(&k, &REPO_ID, ty, &OBJECT_ID, b"\x00forged");
            let sealed = envelope::seal(&k, binding(ty), b"forged", None, Some(NONCE));
            assert_eq!(env, sealed, "harness out of date: forge_envelope != envelope::seal");
            let opened = envelope::open(&k, binding(ty), &env, 1 << 20)
                .expect("harness out of date: forged envelope does not open");
            assert_eq!(opened, b"forged");
        }
    });
}

/// Decoders of repository bytes must report bad input as `Corrupt`
/// (exit code 14), never as another kind.
#[track_caller]
pub fn assert_corrupt(e: &Error) {
    assert_eq!(
        e.kind(),
        ErrorKind::Corrupt,
        "decoder returned a non-Corrupt error: {e:?}"
    );
}

/// A little reader for structured inputs: never fails, yields zeros once the
/// input is exhausted.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let src = self.take(N);
        out[..src.len()].copy_from_slice(src);
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}
