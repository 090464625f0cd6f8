//! On-disk types, one file per chapter of format-spec/. Pure: no I/O.

pub mod chunklist;
pub mod config;
pub mod envelope;
mod ids;
pub mod keyfile;
pub mod label;
pub mod pack;
pub mod snapshot;
pub mod tree;

pub use envelope::{Binding, ObjectType};
pub use ids::{BlobId, PackId, RepoId, SnapshotId};

/// The repository format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Upper bound for decoded metadata objects (trees, snapshots, lists, config).
pub const METADATA_CAP: usize = 64 << 20;
