//! coffre: a content-addressed, deduplicating, encrypted backup store for
//! database dumps and the volumes beside them.
//!
//! Layers, bottom to top; each uses only what is below it:
//!
//! ```text
//!   cli/            arguments → settings → one file per command; progress, --json
//!   adapters/ plan  databases and files as sources and restore targets; coffre.toml
//!   pipeline/       backup and restore of streams and trees (both cores, bounded memory)
//!   repo/ index/    open/init, keys, packer, blob reads; the SQLite index
//!   storage/        the storage trait, locations, local and remote (OpenDAL) backends
//!   format/ crypto/ chunker compress   on-disk types, keys, AEAD, FastCDC, zstd (no I/O)
//! ```

pub mod adapters;
pub mod chunker;
pub mod cli;
pub mod compress;
pub mod crypto;
pub mod error;
pub mod format;
pub mod index;
pub mod pipeline;
pub mod plan;
pub mod repo;
pub mod retention;
pub mod select;
pub mod series;
pub mod storage;

pub use error::{Error, ErrorKind, Result};
