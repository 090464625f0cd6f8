//! Reading back every pack: the file hash, the header, and every blob
//! (authenticated, decompressed, re-hashed). A first slice of `scrub`; issue 5
//! adds subsets, budgets and a record of what was verified when.
//!
//! The producer reads each pack, checks its hash and header, and hands out
//! its blobs; the workers verify blobs, so even a repository of one pack
//! keeps every core busy.

use std::cell::RefCell;
use std::sync::Arc;

use crate::error::{ErrorKind, Result};
use crate::format::PackId;
use crate::format::pack::{self, PackEntry};
use crate::pipeline::engine::{self, Done};
use crate::pipeline::{Progress, workers};
use crate::repo::{PACKS, Repo, pack_path};

/// What a scrub found.
#[derive(Debug, Default)]
pub struct ScrubReport {
    pub packs: u64,
    pub blobs: u64,
    pub bytes: u64,
    /// One line per damaged pack or blob, naming it.
    pub damage: Vec<String>,
}

/// A pack read into memory, shared by the workers verifying its blobs.
struct PackData {
    id: PackId,
    bytes: Vec<u8>,
}

enum Event {
    /// A pack was read (its size), or found damaged as a whole.
    Pack(u64, Option<String>),
}

/// A pack's blob entries, or the damage that makes them unreadable.
type PackCheck = std::result::Result<Vec<PackEntry>, String>;

/// Read a pack and check what can be checked without opening blobs.
fn read_pack(repo: &Repo, id: &PackId) -> Result<(Arc<PackData>, PackCheck)> {
    let bytes = match repo.storage().read(&pack_path(id)) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let data = Arc::new(PackData {
                id: *id,
                bytes: Vec::new(),
            });
            return Ok((data, Err(format!("pack {id}: missing"))));
        }
        Err(e) => return Err(e),
    };
    let entries = if PackId::of_bytes(&bytes) != *id {
        Err(format!(
            "pack {id}: content does not match its name (damaged or truncated)"
        ))
    } else {
        pack::decode_pack_header(&repo.keys().encryption, repo.id(), &bytes)
            .map_err(|e| format!("pack {id}: header: {}", e.message()))
    };
    Ok((Arc::new(PackData { id: *id, bytes }), entries))
}

thread_local! {
    static PLAIN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Verify one blob of a pack; Some(damage) if it does not verify.
fn verify_blob(repo: &Repo, pack: &PackData, e: &PackEntry) -> Option<String> {
    let blob = &pack.bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
    PLAIN.with(|plain| {
        let mut plain = plain.borrow_mut();
        let r = repo.open_blob_into(e.blob_type, &e.id, blob, e.raw_length, &mut plain);
        if plain.capacity() > (16 << 20) {
            *plain = Vec::new();
        }
        r.err().map(|err| {
            format!(
                "{} {} in pack {}: {}",
                e.blob_type.name(),
                e.id,
                pack.id,
                err.message()
            )
        })
    })
}

/// Read and verify every pack in the repository.
pub fn scrub_all(repo: &Repo, progress: &dyn Progress) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    engine::run(
        workers(),
        // blobs in flight; each holds its pack in memory until verified
        workers() * 8,
        |em| {
            for dir in repo.storage().list(PACKS)? {
                for name in repo.storage().list(&format!("{PACKS}/{dir}"))? {
                    let Ok(id) = PackId::from_hex(&name) else {
                        continue;
                    };
                    let (data, entries) = read_pack(repo, &id)?;
                    let size = data.bytes.len() as u64;
                    match entries {
                        Ok(entries) => {
                            em.event(Event::Pack(size, None))?;
                            for e in entries {
                                em.work((data.clone(), e))?;
                            }
                        }
                        Err(damage) => em.event(Event::Pack(size, Some(damage)))?,
                    }
                }
            }
            Ok(())
        },
        || Ok(()),
        |_, (pack, e): (Arc<PackData>, PackEntry)| Ok(verify_blob(repo, &pack, &e)),
        |done: Done<Option<String>, Event>| {
            let damage = match done {
                Done::Event(Event::Pack(size, damage)) => {
                    report.packs += 1;
                    report.bytes += size;
                    progress.bytes(size);
                    damage
                }
                Done::Output(damage) => {
                    report.blobs += 1;
                    damage
                }
            };
            if let Some(d) = damage {
                progress.warn(&d);
                report.damage.push(d);
            }
            Ok(())
        },
    )?;
    Ok(report)
}
