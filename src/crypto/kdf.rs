//! Argon2id password stretching, with parameters range-checked before use.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::SecretKey;
use crate::error::{Error, Result};

/// Argon2id parameters as stored in a key file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    pub algorithm: String,
    pub version: u32,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    #[serde(with = "hex32")]
    pub salt: [u8; 32],
}

pub const MEMORY_KIB_MIN: u32 = 8 * 1024;
pub const MEMORY_KIB_MAX: u32 = 4 * 1024 * 1024;
pub const ITERATIONS_MAX: u32 = 16;
pub const PARALLELISM_MAX: u32 = 16;

impl KdfParams {
    /// New parameters with a fresh salt (the defaults are m = 64 MiB, t = 3,
    /// p = 4). Values out of range are a usage error naming the allowed range.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self> {
        let p = KdfParams {
            algorithm: "argon2id".into(),
            version: 19,
            memory_kib,
            iterations,
            parallelism,
            salt: super::random_array(),
        };
        p.check().map_err(|e| {
            Error::usage(e.message().replace(
                "key file has invalid KDF parameters",
                "invalid KDF parameters",
            ))
        })?;
        Ok(p)
    }

    /// Reject parameters that are unsafe or absurd, before any work is done.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| {
            Err(
                Error::corrupt(format!("key file has invalid KDF parameters: {what}")).with_hint(
                    "the key file may be damaged or tampered with; use another key file",
                ),
            )
        };
        if self.algorithm != "argon2id" {
            return bad(format!("algorithm {:?} (only argon2id)", self.algorithm));
        }
        if self.version != 19 {
            return bad(format!("argon2 version {} (only 19)", self.version));
        }
        if !(MEMORY_KIB_MIN..=MEMORY_KIB_MAX).contains(&self.memory_kib) {
            return bad(format!(
                "memory {} KiB (allowed {MEMORY_KIB_MIN}..={MEMORY_KIB_MAX})",
                self.memory_kib
            ));
        }
        if !(1..=ITERATIONS_MAX).contains(&self.iterations) {
            return bad(format!(
                "iterations {} (allowed 1..={ITERATIONS_MAX})",
                self.iterations
            ));
        }
        if !(1..=PARALLELISM_MAX).contains(&self.parallelism) {
            return bad(format!(
                "parallelism {} (allowed 1..={PARALLELISM_MAX})",
                self.parallelism
            ));
        }
        Ok(())
    }
}

/// Stretch `password` into a key-encryption key.
pub fn derive_kek(password: &[u8], params: &KdfParams) -> Result<SecretKey> {
    params.check()?;
    let p = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| Error::corrupt(format!("invalid KDF parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(password, &params.salt, &mut out)
        .map_err(|e| Error::other(format!("argon2: {e}")))?;
    let key = SecretKey::from_bytes(out);
    out.zeroize();
    Ok(key)
}

/// Serde helper: `[u8; 32]` as 64 hex digits.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.as_bytes(), &mut out)
            .map_err(|_| serde::de::Error::custom("expected 64 hex digits"))?;
        Ok(out)
    }
}
