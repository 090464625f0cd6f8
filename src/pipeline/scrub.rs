//! Reading back every pack: the file hash, the header, and every blob
//! (authenticated, decompressed, re-hashed). A first slice of `scrub`; issue 5
//! adds subsets, budgets and a record of what was verified when.

use crate::error::{ErrorKind, Result};
use crate::format::PackId;
use crate::format::pack;
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

/// Verify one pack completely; returns (blobs, bytes) or the damage found.
fn verify_pack(repo: &Repo, id: &PackId) -> Result<(u64, u64, Vec<String>)> {
    let bytes = match repo.storage().read(&pack_path(id)) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok((0, 0, vec![format!("pack {id}: missing")]));
        }
        Err(e) => return Err(e),
    };
    let size = bytes.len() as u64;
    if PackId::of_bytes(&bytes) != *id {
        return Ok((
            0,
            size,
            vec![format!(
                "pack {id}: content does not match its name (damaged or truncated)"
            )],
        ));
    }
    let entries = match pack::decode_pack_header(&repo.keys().encryption, repo.id(), &bytes) {
        Ok(e) => e,
        Err(e) => return Ok((0, size, vec![format!("pack {id}: header: {}", e.message())])),
    };
    let mut damage = Vec::new();
    // one buffer for every blob of the pack: no per-blob allocation and page faults
    let mut plain = Vec::new();
    for e in &entries {
        let blob = &bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
        let ok = repo
            .open_blob_into(e.blob_type, &e.id, blob, e.raw_length, &mut plain)
            .map_err(|err| err.message().to_string());
        if let Err(msg) = ok {
            damage.push(format!(
                "{} {} in pack {id}: {msg}",
                e.blob_type.name(),
                e.id
            ));
        }
    }
    Ok((entries.len() as u64, size, damage))
}

/// Read and verify every pack in the repository.
pub fn scrub_all(repo: &Repo, progress: &dyn Progress) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    engine::run(
        workers(),
        workers() * 2,
        |em| {
            for dir in repo.storage().list(PACKS)? {
                for name in repo.storage().list(&format!("{PACKS}/{dir}"))? {
                    if let Ok(id) = PackId::from_hex(&name) {
                        em.work(id)?;
                    }
                }
            }
            Ok(())
        },
        || Ok(()),
        |_, id: PackId| verify_pack(repo, &id),
        |done: Done<(u64, u64, Vec<String>), ()>| {
            if let Done::Output((blobs, bytes, damage)) = done {
                report.packs += 1;
                report.blobs += blobs;
                report.bytes += bytes;
                progress.bytes(bytes);
                for d in damage {
                    progress.warn(&d);
                    report.damage.push(d);
                }
            }
            Ok(())
        },
    )?;
    Ok(report)
}
