//! `coffre scrub`: read back packs and verify every blob.

use super::args::{Global, ScrubArgs};
use super::progress::Bar;
use super::{open_locked, print_json};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{ScrubOptions, scrub};

pub fn run(g: &Global, a: ScrubArgs) -> Result<i32> {
    if !a.all && a.subset.is_none() && a.max_duration.is_none() && a.max_bytes.is_none() {
        return Err(
            Error::usage("scrub needs to know how much to read").with_hint(
                "pass --all, --subset 1/7 (or 10%), --max-duration 20m or --max-bytes 10G",
            ),
        );
    }
    let repo = open_locked(g, false, "scrub")?;
    let bar = Bar::new(g.quiet || a.json, None, "scrub");
    let opts = ScrubOptions {
        fraction: a.subset,
        max_bytes: a.max_bytes,
        max_duration: a.max_duration,
    };
    let report = scrub(&repo, &opts, &bar);
    bar.finish();
    let report = report?;
    if a.json {
        print_json(&serde_json::to_value(&report).expect("report serializes"))?;
    } else {
        for d in &report.damage {
            eprintln!("damaged: {} {}", d.object, d.problem);
            for x in &d.affects {
                eprintln!("  affects {x}");
            }
        }
    }
    if !report.damage.is_empty() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} damaged object(s) found in {} packs verified (listed above)",
                report.damage.len(),
                report.packs
            ),
        )
        .with_hint("restore affected entries from another snapshot or an off-site copy"));
    }
    if !g.quiet && !a.json {
        eprintln!(
            "scrub: {} of {} packs, {} blobs, {} bytes verified, no damage{}",
            report.packs,
            report.packs_total,
            report.blobs,
            report.bytes,
            if report.packs_left > 0 {
                format!(
                    "; {} packs left for later runs (verified longest ago go first)",
                    report.packs_left
                )
            } else {
                String::new()
            }
        );
    }
    Ok(0)
}
