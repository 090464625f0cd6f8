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

#[cfg(test)]
mod tests {
    use super::*;

    /// A known answer over a buffer large enough for the widest SIMD
    /// backend (the build selects ChaCha20's AVX-512 code where the CPU has
    /// it, see .cargo/config.toml): the ciphertext must not depend on which
    /// backend ran. The expected value was computed with the AVX2 backend.
    #[test]
    fn sealing_a_large_buffer_gives_the_known_answer() {
        let key = SecretKey::from_bytes([0x42; 32]);
        let nonce = [0x24u8; NONCE_LEN];
        // lengths that end inside a wide batch, a block, and exactly on one
        for (len, expected) in [
            (
                1 << 20,
                "009bb222b74f7a8a9bb032f9d04cbb0fdb327edcee547e98bc13b19cea39126a",
            ),
            (
                (1 << 20) + 77,
                "f0c0d383d820093c3ae8ad3db463d6347b8c955e9bb551830af6bb5d550157d5",
            ),
            (
                64 * 13,
                "775fd6277f9679674314cc982db9d5327495f77fba634217604b02664d119988",
            ),
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut buf = plain.clone();
            let tag = seal_in_place(&key, &nonce, b"ad", &mut buf);
            let mut h = blake3::Hasher::new();
            h.update(&buf);
            h.update(&tag);
            assert_eq!(h.finalize().to_hex().as_str(), expected, "{len} bytes");
            let mut out = vec![0u8; len];
            open_to(&key, &nonce, b"ad", &buf, &mut out, &tag).unwrap();
            assert_eq!(out, plain);
            open_in_place(&key, &nonce, b"ad", &mut buf, &tag).unwrap();
            assert_eq!(buf, plain);
        }
    }
}
