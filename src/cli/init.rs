//! `coffre init`

use super::args::{Global, InitArgs};
use super::{password, repo_path};
use crate::error::Result;
use crate::format::config::ChunkerParams;
use crate::repo::{InitOptions, Repo};

pub fn run(g: &Global, a: InitArgs) -> Result<i32> {
    let path = repo_path(g)?;
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
    if path.join(crate::repo::CONFIG).exists() {
        return Err(crate::Error::usage(format!(
            "{} already holds a coffre repository",
            path.display()
        )));
    }
    let pw = password::get_new(g)?;
    let id = Repo::init(&path, &pw, &opts)?;
    eprintln!("created coffre repository {id} at {}", path.display());
    eprintln!("keep the password safe: without it the backups cannot be read");
    Ok(0)
}
