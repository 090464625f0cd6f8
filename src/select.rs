//! Choosing a snapshot: `latest`, `latest~N`, an id prefix, or `--at TIME`,
//! narrowed by entry name, tag and host.

use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};

use crate::error::{Error, Result};
use crate::index::SnapshotRow;

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub host: Option<String>,
}

impl Filter {
    pub fn matches(&self, s: &SnapshotRow) -> bool {
        self.name
            .as_ref()
            .is_none_or(|n| s.entries.iter().any(|(e, _, _)| entry_in(e, n)))
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self.host.as_ref().is_none_or(|h| &s.host == h)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("entry {n:?}"));
        }
        for t in &self.tags {
            parts.push(format!("tag {t:?}"));
        }
        if let Some(h) = &self.host {
            parts.push(format!("host {h:?}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" with {}", parts.join(", "))
        }
    }
}

/// The tag of safety snapshots taken before a destructive restore.
pub const PRE_RESTORE: &str = "pre-restore";

/// Parse `--at`: RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS]]` (also with `T`) in local time.
/// Returns nanoseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64> {
    let s = s.trim();
    let ns = |t: chrono::DateTime<chrono::FixedOffset>| t.timestamp_nanos_opt();
    if let Some(n) = chrono::DateTime::parse_from_rfc3339(s).ok().and_then(ns) {
        return Ok(n);
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    if let Some(n) = naive {
        // an ambiguous local time (DST fold) takes the earlier instant
        if let Some(v) = Local
            .from_local_datetime(&n)
            .earliest()
            .and_then(|t| ns(t.fixed_offset()))
        {
            return Ok(v);
        }
    }
    Err(Error::usage(format!("cannot read the time {s:?}"))
        .with_hint("use RFC 3339 (2026-11-20T03:00:00Z) or local 'YYYY-MM-DD HH:MM[:SS]'"))
}

/// Pick one snapshot from `rows` (oldest first). `spec` is `latest`,
/// `latest~N`, or an id prefix; `at` limits to snapshots at or before a time.
pub fn select<'a>(
    rows: &'a [SnapshotRow],
    spec: &str,
    at: Option<i64>,
    filter: &Filter,
) -> Result<&'a SnapshotRow> {
    let candidates: Vec<&SnapshotRow> = rows
        .iter()
        .filter(|s| filter.matches(s) && at.is_none_or(|t| s.time_ns <= t))
        .collect();
    let when = if at.is_some() {
        " at or before that time"
    } else {
        ""
    };
    if let Some(rest) = spec.strip_prefix("latest") {
        // safety snapshots taken before a restore are not "the latest
        // backup": `latest` passes over them unless asked for by tag
        let candidates: Vec<&SnapshotRow> = if filter.tags.iter().any(|t| t == PRE_RESTORE) {
            candidates
        } else {
            candidates
                .into_iter()
                .filter(|s| !s.tags.iter().any(|t| t == PRE_RESTORE))
                .collect()
        };
        let back: usize = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('~')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    Error::usage(format!("cannot read snapshot {spec:?}"))
                        .with_hint("use latest, latest~N or an id prefix")
                })?
        };
        return candidates
            .len()
            .checked_sub(back.saturating_add(1))
            .map(|i| candidates[i])
            .ok_or_else(|| {
                Error::not_found(format!("no snapshot {spec}{}{when}", filter.describe()))
                    .with_hint("list them with `coffre snapshots`")
            });
    }
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::usage(format!("cannot read snapshot {spec:?}"))
            .with_hint("use latest, latest~N or an id prefix"));
    }
    let found: Vec<&&SnapshotRow> = candidates
        .iter()
        .filter(|s| s.id.to_hex().starts_with(&prefix))
        .collect();
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(
            Error::not_found(format!("no snapshot {spec}{}{when}", filter.describe()))
                .with_hint("list them with `coffre snapshots`"),
        ),
        n => Err(
            Error::usage(format!("snapshot prefix {spec} matches {n} snapshots"))
                .with_hint("give more digits"),
        ),
    }
}

/// Entry `e` is `name`, or one of the `name/…` entries a plan source with
/// several paths makes.
pub fn entry_in(e: &str, name: &str) -> bool {
    e.strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SnapshotId;

    fn row(b: u8, t: i64, names: &[&str], tags: &[&str]) -> SnapshotRow {
        SnapshotRow {
            id: SnapshotId([b; 32]),
            time_ns: t,
            host: "h".into(),
            user: "u".into(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            entries: names
                .iter()
                .map(|n| (n.to_string(), "stream".into(), 1))
                .collect(),
            failed: Vec::new(),
        }
    }

    #[test]
    fn latest_prefix_at_and_filters() {
        let rows = vec![
            row(0xaa, 10, &["db"], &[]),
            row(0xab, 20, &["files"], &["x"]),
            row(0xbb, 30, &["db"], &[]),
        ];
        let f = Filter::default();
        assert_eq!(select(&rows, "latest", None, &f).unwrap().time_ns, 30);
        assert_eq!(select(&rows, "latest~1", None, &f).unwrap().time_ns, 20);
        assert!(select(&rows, "latest~3", None, &f).is_err());
        assert_eq!(select(&rows, "latest", Some(25), &f).unwrap().time_ns, 20);
        assert_eq!(select(&rows, "latest", Some(30), &f).unwrap().time_ns, 30);
        assert!(select(&rows, "latest", Some(5), &f).is_err());
        let db = Filter {
            name: Some("db".into()),
            ..Default::default()
        };
        assert_eq!(select(&rows, "latest~1", None, &db).unwrap().time_ns, 10);
        let tagged = Filter {
            tags: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(select(&rows, "latest", None, &tagged).unwrap().time_ns, 20);
        assert_eq!(select(&rows, "bb", None, &f).unwrap().time_ns, 30);
        assert!(select(&rows, "a", None, &f).is_err(), "ambiguous");
        assert!(select(&rows, "zz", None, &f).is_err());
    }

    #[test]
    fn time_formats() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1_000_000_000);
        assert!(parse_time("2026-11-20 03:00").is_ok());
        assert!(parse_time("2026-11-20").is_ok());
        assert!(
            parse_time("2026-11-20 03:00:07").unwrap() > parse_time("2026-11-20 03:00").unwrap()
        );
        assert!(parse_time("tuesday").is_err());
    }
}
