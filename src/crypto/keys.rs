//! The master key and the subkeys derived from it.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 secret bytes that zeroize on drop and never print.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// The repository's random master key; wrapped in key files, never stored in clear.
#[derive(Clone, Debug)]
pub struct MasterKey(pub SecretKey);

impl MasterKey {
    pub fn generate() -> Self {
        MasterKey(SecretKey(super::random_array()))
    }
}

pub const CONTEXT_ENCRYPTION: &str = "coffre v1 object encryption key";
pub const CONTEXT_CHUNK_ID: &str = "coffre v1 blob id key";
pub const CONTEXT_CHUNKER: &str = "coffre v1 chunker seed";

/// Subkeys derived from the master key with BLAKE3's key derivation mode, so
/// that no key is used for two purposes.
#[derive(Clone)]
pub struct Keys {
    pub encryption: SecretKey,
    pub blob_id: SecretKey,
    pub chunker_seed: u64,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

impl Keys {
    pub fn derive(master: &MasterKey) -> Keys {
        let mk = master.0.expose();
        let mut seed = blake3::derive_key(CONTEXT_CHUNKER, mk);
        let chunker_seed = u64::from_le_bytes(seed[..8].try_into().unwrap());
        seed.zeroize();
        Keys {
            encryption: SecretKey(blake3::derive_key(CONTEXT_ENCRYPTION, mk)),
            blob_id: SecretKey(blake3::derive_key(CONTEXT_CHUNK_ID, mk)),
            chunker_seed,
        }
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> crate::format::BlobId {
        crate::format::BlobId(*blake3::keyed_hash(self.blob_id.expose(), plaintext).as_bytes())
    }
}
