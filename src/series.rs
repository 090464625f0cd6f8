//! Series: the snapshots of one host with the same set of entry names (a
//! plan's nightly snapshot, an `--only` subset, a single named backup),
//! safety snapshots (`pre-restore`) apart. Retention and health look at one
//! series at a time, never across series.

use std::collections::BTreeMap;

use crate::index::SnapshotRow;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub host: String,
    pub names: Vec<String>,
    /// Safety snapshots taken before restores.
    pub safety: bool,
}

impl Series {
    pub fn of(r: &SnapshotRow) -> Series {
        let mut names: Vec<String> = r.entries.iter().map(|e| e.0.clone()).collect();
        // a partial snapshot belongs with the complete ones
        names.extend(r.failed.iter().cloned());
        names.sort();
        names.dedup();
        Series {
            host: r.host.clone(),
            names,
            safety: r.tags.iter().any(|t| t == crate::select::PRE_RESTORE),
        }
    }

    /// "postgres/app + uploads on db1", for people.
    pub fn label(&self) -> String {
        format!(
            "{}{} on {}",
            self.names.join(" + "),
            if self.safety { " (pre-restore)" } else { "" },
            self.host
        )
    }
}

/// Snapshots grouped by series, each oldest first (as `rows` are).
pub fn group(rows: &[SnapshotRow]) -> BTreeMap<Series, Vec<&SnapshotRow>> {
    let mut out: BTreeMap<Series, Vec<&SnapshotRow>> = BTreeMap::new();
    for r in rows {
        out.entry(Series::of(r)).or_default().push(r);
    }
    out
}
