//! `coffre init`

use super::args::{Global, InitArgs};
use super::{password, repo_location};
use crate::error::Result;
use crate::format::config::ChunkerParams;
use crate::repo::{InitOptions, Repo};

pub fn run(g: &Global, a: InitArgs) -> Result<i32> {
    let location = repo_location(g)?;
    let kib = a.chunk_size.saturating_mul(1024);
    let opts = InitOptions {
        kdf_memory_kib: a.kdf_memory.saturating_mul(1024),
        kdf_iterations: a.kdf_iterations,
        kdf_parallelism: a.kdf_parallelism,
        chunker: ChunkerParams {
            min_size: kib / 4,
            avg_size: kib,
            max_size: kib.saturating_mul(4),
        },
        zstd_level: a.compression,
        pack_size: a.pack_size.saturating_mul(1 << 20),
    };
    // fail on an existing repository before asking for a password
    crate::repo::check_can_init(&location)?;
    let pw = password::get_new(g)?;
    let id = Repo::init(&location, &pw, &opts)?;
    eprintln!("created coffre repository {id} at {location}");
    eprintln!("keep the password safe: without it the backups cannot be read");
    Ok(0)
}
