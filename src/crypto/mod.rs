//! Key hierarchy, password KDF and AEAD (format-spec/crypto.md).
//!
//! Secrets live in types that zeroize on drop and print as `[redacted]`.

mod kdf;
mod keys;

pub use kdf::{KdfParams, derive_kek};
pub use keys::{Keys, MasterKey, SecretKey};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;

/// Fill an array from the operating system's random source.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source failed");
    out
}

/// Encrypt `buf` in place with XChaCha20-Poly1305; returns the tag.
pub fn seal_in_place(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key.expose()));
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(*nonce), ad, buf.into())
        .expect("XChaCha20-Poly1305 cannot fail on in-memory buffers");
    tag.into()
}

/// Decrypt `ciphertext` into `out` (of the same length): one pass over the
/// bytes where copying them first to decrypt in place would be two. Fails
/// (leaving `out` unspecified) if the tag does not verify.
pub fn open_to(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
    out: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<()> {
    let buf = chacha20poly1305::aead::inout::InOutBuf::new(ciphertext, out)
        .map_err(|_| Error::other("decryption buffer of the wrong length"))?;
    let cipher = XChaCha20Poly1305::new(&Key::from(*key.expose()));
    cipher
        .decrypt_inout_detached(&XNonce::from(*nonce), ad, buf, &(*tag).into())
        .map_err(|_| Error::corrupt("authentication failed"))
}

/// Decrypt `buf` in place; fails (leaving `buf` unspecified) if the tag does not verify.
pub fn open_in_place(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<()> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key.expose()));
    cipher
        .decrypt_inout_detached(&XNonce::from(*nonce), ad, buf.into(), &(*tag).into())
        .map_err(|_| Error::corrupt("authentication failed"))
}
