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
    let mut memory = ArgonMemory::new(p.block_count())?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(password, &params.salt, &mut out, memory.blocks())
        .map_err(|e| Error::other(format!("argon2: {e}")))?;
    drop(memory);
    let key = SecretKey::from_bytes(out);
    out.zeroize();
    Ok(key)
}

/// Argon2's working memory (64 MiB by default), mapped fresh from the kernel.
///
/// `hash_password_into` would allocate it with `alloc_zeroed`, which for
/// Argon2's 64-byte-aligned blocks means an aligned allocation followed by a
/// memset: one thread faulting in and clearing every page before the lanes
/// start, about a third of the cost of opening a repository. Pages from
/// `mmap` are already zero, so the lanes fault in their own parts in
/// parallel, and on 2 MiB transparent huge pages (where the kernel allows
/// them) 32 faults replace 16,384.
struct ArgonMemory {
    ptr: *mut argon2::Block,
    len: usize,
    map: *mut libc::c_void,
    map_len: usize,
}

const HUGE_PAGE: usize = 2 << 20;

impl ArgonMemory {
    fn new(blocks: usize) -> Result<ArgonMemory> {
        let len = blocks * std::mem::size_of::<argon2::Block>();
        // room to start on a huge-page boundary
        let map_len = len + HUGE_PAGE;
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; failure is checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(Error::other(format!(
                "argon2: cannot map {} MiB of memory: {}",
                len >> 20,
                std::io::Error::last_os_error()
            )));
        }
        let skip = (HUGE_PAGE - map as usize % HUGE_PAGE) % HUGE_PAGE;
        // SAFETY: skip < HUGE_PAGE, so [skip, skip + len) lies inside the mapping.
        let ptr = unsafe { map.cast::<u8>().add(skip) };
        // A hint only: without huge pages this is the usual 4 KiB faulting.
        // SAFETY: the range lies inside our own mapping.
        unsafe { libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE) };
        Ok(ArgonMemory {
            ptr: ptr.cast(),
            len: blocks,
            map,
            map_len,
        })
    }

    fn blocks(&mut self) -> &mut [argon2::Block] {
        // SAFETY: ptr is 2 MiB-aligned (more than Block's 64), the range is
        // inside the mapping and readable and writable, fresh anonymous pages
        // are zero and all-zero bytes are a valid Block (an array of u64),
        // and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for ArgonMemory {
    fn drop(&mut self) {
        // Unmapped pages go back to the kernel, which clears them before any
        // other use: nothing derived from the password outlives this.
        // SAFETY: map and map_len are exactly what mmap returned and was given,
        // and no slice from blocks() outlives &mut self.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
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
