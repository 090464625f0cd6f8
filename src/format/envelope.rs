//! The envelope around every encrypted object (format-spec/envelope.md).
//!
//! ```text
//! envelope  = version[1] || type[1] || nonce[24] || ciphertext || tag[16]
//! plaintext = codec[1] || body
//! ad        = "coffre\0" || repo_id[16] || version[1] || type[1] || object_id[32]
//! ```

use crate::compress::{self, CODEC_NONE, CODEC_ZSTD};
use crate::crypto::{self, NONCE_LEN, SecretKey, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::{FORMAT_VERSION, RepoId};

/// Bytes an envelope adds around a body: version, type, nonce, codec, tag.
pub const OVERHEAD: usize = 2 + NONCE_LEN + 1 + TAG_LEN;
const HEADER: usize = 2 + NONCE_LEN;
const AD_PREFIX: &[u8; 7] = b"coffre\0";

/// The type byte of an envelope. The type is bound into the associated data,
/// so an object presented as another type fails to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectType {
    Config = 0x01,
    Data = 0x10,
    Tree = 0x11,
    ChunkList = 0x12,
    PackHeader = 0x20,
    Snapshot = 0x30,
}

impl ObjectType {
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => ObjectType::Config,
            0x10 => ObjectType::Data,
            0x11 => ObjectType::Tree,
            0x12 => ObjectType::ChunkList,
            0x20 => ObjectType::PackHeader,
            0x30 => ObjectType::Snapshot,
            _ => return None,
        })
    }
    /// May this type be stored as a blob inside a pack?
    pub fn is_blob(self) -> bool {
        matches!(
            self,
            ObjectType::Data | ObjectType::Tree | ObjectType::ChunkList
        )
    }
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Config => "config",
            ObjectType::Data => "data chunk",
            ObjectType::Tree => "tree",
            ObjectType::ChunkList => "chunk list",
            ObjectType::PackHeader => "pack header",
            ObjectType::Snapshot => "snapshot",
        }
    }
}

/// Everything an envelope is bound to besides its key.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub repo_id: &'a RepoId,
    pub object_type: ObjectType,
    pub object_id: &'a [u8; 32],
}

impl Binding<'_> {
    fn associated_data(&self) -> [u8; 7 + 16 + 1 + 1 + 32] {
        let mut ad = [0u8; 57];
        ad[..7].copy_from_slice(AD_PREFIX);
        ad[7..23].copy_from_slice(&self.repo_id.0);
        ad[23] = FORMAT_VERSION;
        ad[24] = self.object_type as u8;
        ad[25..].copy_from_slice(self.object_id);
        ad
    }
}

/// Seal `plaintext`, compressing it with zstd at `level` when that pays
/// (`level` = None never compresses). `nonce` is only for test vectors:
/// production code passes None and gets a fresh random nonce.
pub fn seal(
    key: &SecretKey,
    binding: Binding<'_>,
    plaintext: &[u8],
    level: Option<i32>,
    nonce: Option<[u8; NONCE_LEN]>,
) -> Vec<u8> {
    // compressed in a per-thread scratch buffer and copied out at its exact
    // size: sealed blobs wait in pack buffers, and chunk-sized allocations
    // freed on other threads fragment the heap. Stored bodies go straight
    // into a buffer of their exact size: through the scratch they would cost
    // a third chunk-sized buffer per worker and a copy.
    let mut sealed = SCRATCH.with(|scratch| {
        let mut out = scratch.borrow_mut();
        out.clear();
        out.push(FORMAT_VERSION);
        out.push(binding.object_type as u8);
        out.extend_from_slice(&nonce.unwrap_or_else(crypto::random_array));
        out.push(CODEC_ZSTD);
        let compressed = match level {
            Some(level) => compress::compress_into(plaintext, level, &mut out),
            None => false,
        };
        let body = if compressed {
            &out[HEADER + 1..]
        } else {
            plaintext
        };
        let mut sealed = Vec::with_capacity(HEADER + 1 + body.len() + TAG_LEN);
        sealed.extend_from_slice(&out[..HEADER]);
        sealed.push(if compressed { CODEC_ZSTD } else { CODEC_NONE });
        sealed.extend_from_slice(body);
        if out.capacity() > (4 << 20) + (64 << 10) {
            *out = Vec::new();
        }
        sealed
    });
    if fault() == Some(Fault::AfterCompression) && sealed.len() > HEADER + 1 {
        let mid = HEADER + 1 + (sealed.len() - HEADER - 1) / 2;
        sealed[mid] ^= 0x01;
    }
    let nonce: [u8; NONCE_LEN] = sealed[2..HEADER].try_into().unwrap();
    let tag = crypto::seal_in_place(
        key,
        &nonce,
        &binding.associated_data(),
        &mut sealed[HEADER..],
    );
    sealed.extend_from_slice(&tag);
    if fault() == Some(Fault::AfterSealing) {
        let mid = sealed.len() / 2;
        sealed[mid] ^= 0x01;
    }
    sealed
}

/// Faults the tests inject into sealing (`COFFRE_FAULT_INJECT`), standing
/// for a faulty compressor or encryptor, or memory corruption: writers
/// verify each sealed blob against its plaintext, so such a fault must stop
/// the backup before the pack is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Flip a byte of the compressed (or stored) body before encryption.
    AfterCompression,
    /// Flip a byte of the finished envelope.
    AfterSealing,
}

fn fault() -> Option<Fault> {
    static FAULT: std::sync::OnceLock<Option<Fault>> = std::sync::OnceLock::new();
    *FAULT.get_or_init(|| match std::env::var("COFFRE_FAULT_INJECT").as_deref() {
        Ok("after-compression") => Some(Fault::AfterCompression),
        Ok("after-sealing") => Some(Fault::AfterSealing),
        _ => None,
    })
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Authenticate, decrypt and decompress an envelope. `cap` bounds the size of
/// the plaintext after decompression. The tag is checked before anything is
/// decompressed.
pub fn open(key: &SecretKey, binding: Binding<'_>, envelope: &[u8], cap: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    open_into(key, binding, envelope, cap, &mut out)?;
    Ok(out)
}

/// Like [`open`], into `out` (replacing its contents) so that buffers can be
/// reused; `out` is unspecified after an error.
pub fn open_into(
    key: &SecretKey,
    binding: Binding<'_>,
    envelope: &[u8],
    cap: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let (nonce, tag) = check_header(binding.object_type, envelope)?;
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        let body = &envelope[HEADER..envelope.len() - TAG_LEN];
        // resize zeroes only past the current length, which earlier blobs set
        buf.resize(body.len(), 0);
        let r = crypto::open_to(
            key,
            &nonce,
            &binding.associated_data(),
            body,
            &mut buf,
            &tag,
        )
        .map_err(|_| auth_failed(binding.object_type))
        .and_then(|()| decode(binding.object_type, &buf, cap, out));
        if buf.capacity() > (4 << 20) + (64 << 10) {
            *buf = Vec::new();
        }
        r
    })
}

/// Like [`open_into`], decrypting in `envelope` itself (which is left
/// unspecified) rather than in a copy: for callers that read each envelope
/// into a buffer of their own.
pub fn open_in_place_into(
    key: &SecretKey,
    binding: Binding<'_>,
    envelope: &mut [u8],
    cap: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let (nonce, tag) = check_header(binding.object_type, envelope)?;
    let tag_at = envelope.len() - TAG_LEN;
    let body = &mut envelope[HEADER..tag_at];
    crypto::open_in_place(key, &nonce, &binding.associated_data(), body, &tag)
        .map_err(|_| auth_failed(binding.object_type))?;
    decode(binding.object_type, body, cap, out)
}

fn auth_failed(ty: ObjectType) -> Error {
    Error::corrupt(format!("{} failed authentication", ty.name()))
}

/// The plaintext header's checks; returns the nonce and the tag.
fn check_header(ty: ObjectType, envelope: &[u8]) -> Result<([u8; NONCE_LEN], [u8; TAG_LEN])> {
    if envelope.len() < OVERHEAD {
        return Err(Error::corrupt(format!(
            "{} is truncated: {} bytes, an envelope has at least {OVERHEAD}",
            ty.name(),
            envelope.len()
        )));
    }
    if envelope[0] != FORMAT_VERSION {
        return Err(Error::corrupt(format!(
            "{} has unsupported format version {} (this coffre reads {FORMAT_VERSION})",
            ty.name(),
            envelope[0]
        )));
    }
    if envelope[1] != ty as u8 {
        return Err(Error::corrupt(format!(
            "{} has type byte {:#04x}, expected {:#04x}",
            ty.name(),
            envelope[1],
            ty as u8
        )));
    }
    let nonce = envelope[2..HEADER].try_into().unwrap();
    let tag = envelope[envelope.len() - TAG_LEN..].try_into().unwrap();
    Ok((nonce, tag))
}

/// Decode a decrypted body (codec || bytes) into `out`.
fn decode(ty: ObjectType, buf: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<()> {
    match buf[0] {
        CODEC_NONE => {
            if buf.len() - 1 > cap {
                return Err(Error::corrupt(format!(
                    "{} is larger than {cap} bytes",
                    ty.name()
                )));
            }
            out.clear();
            out.reserve_exact(buf.len() - 1); // see compress::decompress_into
            out.extend_from_slice(&buf[1..]);
            Ok(())
        }
        CODEC_ZSTD => compress::decompress_into(&buf[1..], cap, out)
            .map_err(|e| e.context(format!("decompressing {}", ty.name()))),
        other => Err(Error::corrupt(format!(
            "{} uses unknown codec {other:#04x}",
            ty.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes([1; 32])
    }

    #[test]
    fn round_trip_raw_and_compressed() {
        let repo = RepoId([2; 16]);
        let id = [3u8; 32];
        let b = Binding {
            repo_id: &repo,
            object_type: ObjectType::Tree,
            object_id: &id,
        };
        for plain in [Vec::new(), b"x".to_vec(), b"abc".repeat(10_000)] {
            for level in [None, Some(2)] {
                let env = seal(&key(), b, &plain, level, None);
                assert_eq!(open(&key(), b, &env, 1 << 20).unwrap(), plain);
            }
        }
        let big = b"abc".repeat(10_000);
        let env = seal(&key(), b, &big, Some(2), None);
        assert!(
            env.len() < big.len() / 10,
            "compressible data is compressed"
        );
        assert!(
            open(&key(), b, &env, big.len() - 1).is_err(),
            "cap is enforced"
        );
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let repo = RepoId([2; 16]);
        let id = [3u8; 32];
        let b = Binding {
            repo_id: &repo,
            object_type: ObjectType::Data,
            object_id: &id,
        };
        let env = seal(&key(), b, b"some chunk of a database dump", Some(2), None);
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x40;
            assert!(
                open(&key(), b, &bad, 1 << 20).is_err(),
                "flip at {i} accepted"
            );
        }
        assert!(open(&key(), b, &env[..env.len() - 1], 1 << 20).is_err());
        assert!(open(&SecretKey::from_bytes([9; 32]), b, &env, 1 << 20).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let repo = RepoId([2; 16]);
        let b = Binding {
            repo_id: &repo,
            object_type: ObjectType::Data,
            object_id: &[0; 32],
        };
        let a = seal(&key(), b, b"same", None, None);
        let c = seal(&key(), b, b"same", None, None);
        assert_ne!(a[2..26], c[2..26]);
    }
}
