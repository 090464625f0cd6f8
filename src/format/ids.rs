//! Typed 256-bit identifiers (format-spec/README.md, "Identifiers").

use std::fmt;

use crate::error::{Error, Result};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub const LEN: usize = 32;
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            pub fn from_hex(s: &str) -> Result<Self> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| {
                    Error::corrupt(format!(
                        "invalid {}: expected 64 hex digits, got {:?}",
                        stringify!($name),
                        s.chars().take(80).collect::<String>()
                    ))
                })?;
                Ok($name(out))
            }
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                Some($name(b.try_into().ok()?))
            }
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a blob's plaintext (data chunk, tree, chunk list).
    BlobId
);
id_type!(
    /// Unkeyed BLAKE3 of a pack file's bytes; also its file name.
    PackId
);
id_type!(
    /// 32 random bytes naming a snapshot; bound into its envelope.
    SnapshotId
);

impl PackId {
    pub fn of_bytes(bytes: &[u8]) -> PackId {
        PackId(*blake3::hash(bytes).as_bytes())
    }
}

impl SnapshotId {
    pub fn random() -> SnapshotId {
        SnapshotId(crate::crypto::random_array())
    }
}

/// 16 random bytes naming a repository; bound into every envelope.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RepoId(pub [u8; 16]);

impl fmt::Debug for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoId({})", hex::encode(self.0))
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
