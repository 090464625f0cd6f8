//! The `config` file (format-spec/config.md).
//!
//! ```text
//! config = "COFFREPO" || version[1] || repo_id[16] || envelope(type=config, id=0^32)
//! ```
//! The plaintext header tells which repository this is before any key is
//! opened; the parameters that shape the data are authenticated.

use serde::{Deserialize, Serialize};

use crate::crypto::SecretKey;
use crate::error::{Error, Result};
use crate::format::envelope::{self, Binding, ObjectType};
use crate::format::{FORMAT_VERSION, METADATA_CAP, RepoId};

pub const MAGIC: &[u8; 8] = b"COFFREPO";
pub const HEADER_LEN: usize = 8 + 1 + 16;

/// FastCDC size limits, fixed when the repository is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// 512 KiB / 2 MiB / 8 MiB: dumps compress about 5 % better in 2 MiB
    /// chunks than in 1 MiB ones (pgbench dump: 8.8 vs 9.2 MB for 978 MB),
    /// and chunking skips more bytes.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min_size: 512 << 10,
        avg_size: 2 << 20,
        max_size: 8 << 20,
    };
}

/// The encrypted part of the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub chunker: ChunkerParams,
    pub zstd_level: i32,
    pub pack_size: u32,
    pub created: String,
}

impl RepoConfig {
    pub fn check(&self) -> Result<()> {
        let c = &self.chunker;
        let bad = |what: &str| Err(Error::corrupt(format!("config: {what}")));
        if c.min_size < 4096 || c.min_size > (1 << 20) || !c.min_size.is_multiple_of(2) {
            return bad("chunker min_size must be even and in 4096..=1048576");
        }
        if c.avg_size < c.min_size || c.avg_size > (4 << 20) || !c.avg_size.is_multiple_of(2) {
            return bad("chunker avg_size must be even and in min_size..=4194304");
        }
        if c.max_size < c.avg_size || c.max_size > (16 << 20) || !c.max_size.is_multiple_of(2) {
            return bad("chunker max_size must be even and in avg_size..=16777216");
        }
        if !(1..=19).contains(&self.zstd_level) {
            return bad("zstd_level must be in 1..=19");
        }
        if self.pack_size < (1 << 20) || self.pack_size > (256 << 20) {
            return bad("pack_size must be in 1048576..=268435456");
        }
        Ok(())
    }
}

/// Parse the plaintext header: returns the repository id.
pub fn read_header(bytes: &[u8]) -> Result<RepoId> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(Error::corrupt(
            "config: not a coffre repository (bad magic)",
        ));
    }
    if bytes[8] != FORMAT_VERSION {
        return Err(Error::corrupt(format!(
            "config: repository format version {} is not supported (this coffre reads {FORMAT_VERSION})",
            bytes[8]
        ))
        .with_hint("use a coffre release that supports this format"));
    }
    Ok(RepoId(bytes[9..HEADER_LEN].try_into().unwrap()))
}

pub fn encode(
    key: &SecretKey,
    repo_id: &RepoId,
    config: &RepoConfig,
    nonce: Option<[u8; 24]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&repo_id.0);
    let json = serde_json::to_vec(config).expect("config serializes");
    out.extend(envelope::seal(key, binding(repo_id), &json, None, nonce));
    out
}

pub fn decode(key: &SecretKey, bytes: &[u8]) -> Result<RepoConfig> {
    let repo_id = read_header(bytes)?;
    let json = envelope::open(key, binding(&repo_id), &bytes[HEADER_LEN..], METADATA_CAP)?;
    let config: RepoConfig = serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt(format!("config: invalid JSON: {e}")))?;
    config.check()?;
    Ok(config)
}

const ZERO_ID: [u8; 32] = [0; 32];

fn binding(repo_id: &RepoId) -> Binding<'_> {
    Binding {
        repo_id,
        object_type: ObjectType::Config,
        object_id: &ZERO_ID,
    }
}
