//! `coffre scrub --all`

use super::args::{Global, ScrubArgs};
use super::progress::Bar;
use super::{open_locked, print_json};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::scrub_all;

pub fn run(g: &Global, a: ScrubArgs) -> Result<i32> {
    if !a.all {
        return Err(Error::usage("scrub needs --all for now")
            .with_hint("subsets and time budgets come later"));
    }
    let repo = open_locked(g, false, "scrub")?;
    let bar = Bar::new(g.quiet || a.json, None, "scrub");
    let report = scrub_all(&repo, &bar);
    bar.finish();
    let report = report?;
    if a.json {
        print_json(&serde_json::json!({
            "packs": report.packs, "blobs": report.blobs, "bytes": report.bytes, "damage": report.damage,
        }))?;
    }
    if !report.damage.is_empty() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} damaged object(s) found in {} packs (listed above)",
                report.damage.len(),
                report.packs
            ),
        ));
    }
    if !g.quiet {
        eprintln!(
            "scrub: {} packs, {} blobs, {} bytes verified, no damage",
            report.packs, report.blobs, report.bytes
        );
    }
    Ok(0)
}
