//! Reading back packs: the file hash, the header, and every blob
//! (authenticated, decompressed, re-hashed). All of them, or those verified
//! longest ago up to a share or a budget; the index records when each pack
//! was verified and whether it was intact, so budgeted nightly runs cover
//! the whole repository in turn.
//!
//! The producer reads each pack, checks its hash and header, and hands out
//! its blobs; the workers verify blobs, so even a repository of one pack
//! keeps every core busy.

use std::cell::RefCell;
use std::sync::Arc;

use crate::error::{ErrorKind, Result};
use std::collections::HashMap;

use crate::format::pack::{self, PackEntry};
use crate::format::{BlobId, ObjectType, PackId};
use crate::pipeline::buffers::BufferPool;
use crate::pipeline::engine::{self, Done};
use crate::pipeline::{Progress, workers};
use crate::repo::{Repo, pack_path};

/// Which packs to verify: all, or the ones verified longest ago (never
/// verified first) up to a share and/or a budget.
#[derive(Clone, Debug, Default)]
pub struct ScrubOptions {
    /// This share of the packs (0 < f <= 1); None: all.
    pub fraction: Option<f64>,
    /// Stop before the next pack once this many bytes were read.
    pub max_bytes: Option<u64>,
    /// Start no new pack after this long.
    pub max_duration: Option<std::time::Duration>,
}

/// What a scrub found.
#[derive(Debug, Default, serde::Serialize)]
pub struct ScrubReport {
    /// Packs, blobs and bytes verified.
    pub packs: u64,
    pub blobs: u64,
    pub bytes: u64,
    /// Packs in the repository.
    pub packs_total: u64,
    /// Packs left for a later run (subset or budget).
    pub packs_left: u64,
    /// Each damaged object, naming it and the snapshot entries it affects.
    pub damage: Vec<super::Damage>,
}

/// A pack read into memory, shared by the workers verifying its blobs.
struct PackData {
    id: PackId,
    bytes: Vec<u8>,
    /// Where `bytes` goes once the last blob is verified.
    pool: Option<BufferPool>,
}

impl Drop for PackData {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(std::mem::take(&mut self.bytes));
        }
    }
}

enum Event {
    /// A pack was read: its id, size, blob count, or the damage that makes
    /// it unreadable as a whole.
    Pack(PackId, u64, usize, Option<String>),
}

/// A verified blob: its pack, and its damage if any.
type Verified = (PackId, Option<(BlobId, ObjectType, String)>);

/// A pack's blob entries, or the damage that makes them unreadable.
type PackCheck = std::result::Result<Vec<PackEntry>, String>;

/// Read a pack and check what can be checked without opening blobs.
fn read_pack(repo: &Repo, id: &PackId, buffers: &BufferPool) -> Result<(Arc<PackData>, PackCheck)> {
    let mut bytes = buffers.take();
    match repo.storage().read_into(&pack_path(id), &mut bytes) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let data = Arc::new(PackData {
                id: *id,
                bytes: Vec::new(),
                pool: None,
            });
            return Ok((data, Err(format!("pack {id}: missing"))));
        }
        Err(e) => return Err(e),
    }
    let entries = if PackId::of_bytes(&bytes) != *id {
        Err(format!(
            "pack {id}: content does not match its name (damaged or truncated)"
        ))
    } else {
        pack::decode_pack_header(&repo.keys().encryption, repo.id(), &bytes)
            .map_err(|e| format!("pack {id}: header: {}", e.message()))
    };
    let pool = Some(buffers.clone());
    Ok((
        Arc::new(PackData {
            id: *id,
            bytes,
            pool,
        }),
        entries,
    ))
}

thread_local! {
    static PLAIN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Verify one blob of a pack; Some(damage) if it does not verify.
fn verify_blob(
    repo: &Repo,
    pack: &PackData,
    e: &PackEntry,
) -> Option<(BlobId, ObjectType, String)> {
    let blob = &pack.bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
    PLAIN.with(|plain| {
        let mut plain = plain.borrow_mut();
        let r = repo.open_blob_into(e.blob_type, &e.id, blob, e.raw_length, &mut plain);
        if plain.capacity() > (16 << 20) {
            *plain = Vec::new();
        }
        r.err().map(|err| {
            (
                e.id,
                e.blob_type,
                format!("in pack {}: {}", pack.id, err.message()),
            )
        })
    })
}

/// The packs to verify, in order: never verified first, then verified
/// longest ago; and how many packs there are.
fn choose(repo: &Repo, opts: &ScrubOptions) -> Result<(Vec<PackId>, u64)> {
    let verified = repo.index().pack_verification()?;
    let mut packs: Vec<(i64, PackId, u64)> = Vec::new();
    for id in repo.pack_files()? {
        let (when, size) = match verified.get(&id) {
            Some((size, when)) => (when.unwrap_or(i64::MIN), *size),
            None => (i64::MIN, repo.storage().size(&pack_path(&id))?),
        };
        packs.push((when, id, size));
    }
    // packs the index names but the storage lacks: damage to report
    let listed: std::collections::HashSet<PackId> = packs.iter().map(|p| p.1).collect();
    for (id, (size, _)) in &verified {
        if !listed.contains(id) {
            packs.push((i64::MIN, *id, *size));
        }
    }
    packs.sort();
    let total = packs.len() as u64;
    if let Some(f) = opts.fraction {
        packs.truncate(((total as f64) * f).ceil() as usize);
    }
    if let Some(max) = opts.max_bytes {
        let mut sum = 0u64;
        let keep = packs
            .iter()
            .take_while(|(_, _, size)| {
                let first = sum == 0;
                sum += size;
                first || sum <= max
            })
            .count();
        packs.truncate(keep);
    }
    Ok((packs.into_iter().map(|(_, id, _)| id).collect(), total))
}

/// Read and verify the chosen packs, recording in the index when each was
/// verified and whether it was intact.
pub fn scrub(repo: &Repo, opts: &ScrubOptions, progress: &dyn Progress) -> Result<ScrubReport> {
    let (chosen, total) = choose(repo, opts)?;
    let mut report = ScrubReport {
        packs_total: total,
        ..Default::default()
    };
    let deadline = opts.max_duration.map(|d| std::time::Instant::now() + d);
    let mut bad_packs: HashMap<PackId, String> = HashMap::new();
    let mut bad_blobs: HashMap<BlobId, (ObjectType, String)> = HashMap::new();
    // blobs still to verify per pack, and whether all so far were intact
    let mut pending: HashMap<PackId, (usize, bool)> = HashMap::new();
    let record = |id: &PackId, ok: bool| repo.index().record_verified(id, ok);
    engine::run(
        workers(),
        // blobs in flight, weighted by size: each holds its pack in memory
        // until verified, so a count alone let packs of a few large blobs
        // (one 8 MiB chunk fills a pack) pile up 16 packs deep
        workers() * 2 * engine::MAX_WEIGHT,
        |em| {
            // a remote answers each read after a round trip: several packs
            // are fetched at once (memory: that many packs)
            let ahead = if repo.storage().is_local() { 1 } else { 3 };
            // as many as are in flight at once (read ahead, being verified):
            // packs are read into memory already faulted in, not fresh pages
            let buffers = BufferPool::new(ahead + 2, usize::MAX);
            for window in chosen.chunks(ahead) {
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    break;
                }
                let fetched: Vec<Result<_>> = match window {
                    [id] => vec![read_pack(repo, id, &buffers)],
                    _ => std::thread::scope(|s| {
                        let readers: Vec<_> = window
                            .iter()
                            .map(|id| {
                                let buffers = &buffers;
                                s.spawn(move || read_pack(repo, id, buffers))
                            })
                            .collect();
                        readers
                            .into_iter()
                            .map(|r| r.join().expect("a pack reader panicked"))
                            .collect()
                    }),
                };
                for (id, read) in window.iter().zip(fetched) {
                    let (data, entries) = read?;
                    let size = data.bytes.len() as u64;
                    match entries {
                        Ok(entries) => {
                            em.event(Event::Pack(*id, size, entries.len(), None))?;
                            for e in entries {
                                let weight = engine::weight_of(e.length as usize);
                                em.work_weighted((data.clone(), e), weight)?;
                            }
                        }
                        Err(damage) => em.event(Event::Pack(*id, size, 0, Some(damage)))?,
                    }
                }
            }
            Ok(())
        },
        || Ok(()),
        |_, (pack, e): (Arc<PackData>, PackEntry)| Ok((pack.id, verify_blob(repo, &pack, &e))),
        |done: Done<Verified, Event>| {
            match done {
                Done::Event(Event::Pack(id, size, blobs, damage)) => {
                    report.packs += 1;
                    report.bytes += size;
                    progress.bytes(size);
                    if let Some(d) = damage {
                        progress.warn(&d);
                        bad_packs.insert(id, d);
                        record(&id, false)?;
                    } else if blobs == 0 {
                        record(&id, true)?;
                    } else {
                        pending.insert(id, (blobs, true));
                    }
                }
                Done::Output((pack, damage)) => {
                    report.blobs += 1;
                    let p = pending.get_mut(&pack).expect("a pack event comes first");
                    p.0 -= 1;
                    if let Some((id, ty, d)) = damage {
                        progress.warn(&format!("{} {id} {d}", ty.name()));
                        bad_blobs.insert(id, (ty, d));
                        p.1 = false;
                    }
                    if p.0 == 0 {
                        let ok = p.1;
                        pending.remove(&pack);
                        record(&pack, ok)?;
                    }
                }
            }
            Ok(())
        },
    )?;
    report.packs_left = total - report.packs;
    if !bad_packs.is_empty() || !bad_blobs.is_empty() {
        report.damage = super::check::affected(repo, &bad_packs, &bad_blobs)?;
    }
    Ok(report)
}
