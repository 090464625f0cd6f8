//! Retention policies: which snapshots of a series `forget` keeps.
//!
//! The rules are restic's (`restic forget`, "Removing snapshots according to
//! a policy"), so that people who know one tool can read a policy for the
//! other:
//!
//! - `keep-last N` keeps the N newest snapshots.
//! - `keep-hourly/daily/weekly/monthly/yearly N` walk the series newest
//!   first and keep the newest snapshot of each hour/day/ISO week/month/year
//!   that has one, until N such periods have been used; periods without a
//!   snapshot do not count. When the series runs out before N periods are
//!   used, the oldest snapshot is kept as well ("oldest daily …"), so a young
//!   series keeps all the history it has.
//! - `keep-within SPAN` keeps every snapshot taken after (newest − SPAN). It
//!   counts back from the newest snapshot of the series, not from now, so a
//!   series whose backups stopped is not wiped by the passing of time.
//! - `keep-tag T` keeps every snapshot with tag T.
//!
//! A snapshot is kept when any rule keeps it, and its reasons name every rule
//! that did. Unless forced, the newest snapshot of a series is always kept.
//!
//! Periods are counted in a fixed UTC offset chosen by the caller; a fixed
//! offset has no DST gaps or folds, so periods never repeat out of order.
//! This module does no I/O and never reads the clock.

use std::cmp::Reverse;

use chrono::{DateTime, FixedOffset, Months, TimeDelta};

use crate::error::{Error, Result};

/// How many snapshots of a series to keep, by rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// e.g. "30d": parsed with [`parse_duration`]
    pub keep_within: Option<String>,
    #[serde(default)]
    pub keep_tag: Vec<String>,
}

impl Policy {
    /// No rule at all (forget refuses to run with an empty policy).
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| n.is_none())
            && self.keep_within.is_none()
            && self.keep_tag.is_empty()
    }

    /// Check values: `keep_within` parses; a count of 0 is an error.
    pub fn validate(&self) -> Result<()> {
        for (name, n) in self.counts() {
            if n == Some(0) {
                return Err(Error::usage(format!("keep-{name} is 0")).with_hint(format!(
                    "to keep no {name} snapshots, omit the option instead"
                )));
            }
        }
        if let Some(w) = &self.keep_within {
            parse_duration(w).map_err(|e| e.context("keep-within"))?;
        }
        if self.keep_tag.iter().any(|t| t.is_empty()) {
            return Err(Error::usage("keep-tag \"\" names no tag")
                .with_hint("give the tag to keep, e.g. keep-tag pre-deploy"));
        }
        Ok(())
    }

    /// One line, e.g. "keep-last 3, keep-daily 7, keep-within 30d".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .counts()
            .iter()
            .filter_map(|(name, n)| n.map(|n| format!("keep-{name} {n}")))
            .collect();
        if let Some(w) = &self.keep_within {
            parts.push(format!("keep-within {w}"));
        }
        for t in &self.keep_tag {
            parts.push(format!("keep-tag {t}"));
        }
        if parts.is_empty() {
            "no rules".into()
        } else {
            parts.join(", ")
        }
    }

    /// The count rules, in the order they are described and applied.
    fn counts(&self) -> [(&'static str, Option<u32>); 6] {
        [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]
    }
}

/// One snapshot of a series.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub time_ns: i64,
    pub tags: Vec<String>,
}

/// What happens to a candidate, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// A keep-within span. Weeks are folded into days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

/// Apply `policy` to one series. `snaps` may be in any order; the result is
/// in the same order as `snaps`.
///
/// `offset` is the zone in which hours, days, weeks, months and years are
/// counted. Snapshots with the same time rank in input order: of two equal
/// times, the one earlier in `snaps` counts as the newer (a stable sort,
/// newest first, as restic does).
///
/// Unless `force`, the newest snapshot is kept even when no rule keeps it.
/// An empty policy, or one that does not [`validate`](Policy::validate),
/// keeps everything (even with `force`): the caller is expected to refuse
/// those, and guessing what a broken policy meant could delete data.
pub fn apply(
    policy: &Policy,
    snaps: &[Candidate],
    offset: FixedOffset,
    force: bool,
) -> Vec<Decision> {
    let mut out = vec![
        Decision {
            keep: false,
            reasons: Vec::new(),
        };
        snaps.len()
    ];
    fn keep(out: &mut [Decision], i: usize, reason: String) {
        out[i].keep = true;
        out[i].reasons.push(reason);
    }
    if snaps.is_empty() {
        return out;
    }
    if policy.is_empty() || policy.validate().is_err() {
        let why = if policy.is_empty() {
            "empty policy"
        } else {
            "invalid policy"
        };
        for i in 0..snaps.len() {
            keep(&mut out, i, why.into());
        }
        return out;
    }

    // newest first; sort_by_key is stable, so equal times keep input order
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by_key(|&i| Reverse(snaps[i].time_ns));
    let local: Vec<DateTime<FixedOffset>> = snaps
        .iter()
        .map(|s| DateTime::from_timestamp_nanos(s.time_ns).with_timezone(&offset))
        .collect();

    if let Some(n) = policy.keep_last {
        for (rank, &i) in order.iter().take(n as usize).enumerate() {
            keep(&mut out, i, format!("last {}", rank + 1));
        }
    }

    for (period, count) in [
        (Period::Hour, policy.keep_hourly),
        (Period::Day, policy.keep_daily),
        (Period::Week, policy.keep_weekly),
        (Period::Month, policy.keep_monthly),
        (Period::Year, policy.keep_yearly),
    ] {
        let Some(mut left) = count else { continue };
        // times are sorted and the offset is fixed, so a period's snapshots
        // are consecutive: a new label is a new period
        let mut last_label: Option<String> = None;
        let mut last_kept = None;
        for &i in &order {
            if left == 0 {
                break;
            }
            let label = period.label(&local[i]);
            if last_label.as_ref() != Some(&label) {
                keep(&mut out, i, format!("{} {label}", period.rule()));
                left -= 1;
                last_kept = Some(i);
                last_label = Some(label);
            }
        }
        // fewer periods than asked for: keep the oldest too (restic does the
        // same), so the series keeps as much history as the policy allows
        let oldest = order[order.len() - 1];
        if left > 0 && last_kept != Some(oldest) {
            let label = period.label(&local[oldest]);
            keep(
                &mut out,
                oldest,
                format!("oldest {} {label}", period.rule()),
            );
        }
    }

    let newest = order[0];
    if let Some(text) = &policy.keep_within {
        // validate() succeeded above, so this parses
        if let Ok(span) = parse_duration(text) {
            let cutoff = cutoff(local[newest], span);
            for (i, s) in snaps.iter().enumerate() {
                if cutoff.is_none_or(|c| s.time_ns > c) {
                    keep(&mut out, i, format!("within {}", text.trim()));
                }
            }
        }
    }

    for (k, tag) in policy.keep_tag.iter().enumerate() {
        if policy.keep_tag[..k].contains(tag) {
            continue; // named twice: one reason is enough
        }
        for (i, s) in snaps.iter().enumerate() {
            if s.tags.contains(tag) {
                keep(&mut out, i, format!("tag {tag}"));
            }
        }
    }

    if !force && !out[newest].keep {
        keep(&mut out, newest, "newest of its series".into());
    }
    out
}

/// The instant `span` before `newest`, in nanoseconds; `None` when that is
/// before the earliest representable time (then everything is within).
/// Years and months go back on the calendar, clamping to the end of a shorter
/// month (1m before 03-31 is 02-29 or 02-28; 1y before 2024-02-29 is
/// 2023-02-28); days and hours are fixed lengths.
fn cutoff(newest: DateTime<FixedOffset>, span: Span) -> Option<i64> {
    let months = u64::from(span.years) * 12 + u64::from(span.months);
    newest
        .checked_sub_months(Months::new(u32::try_from(months).ok()?))?
        .checked_sub_signed(TimeDelta::try_days(span.days.into())?)?
        .checked_sub_signed(TimeDelta::try_hours(span.hours.into())?)?
        .timestamp_nanos_opt()
}

#[derive(Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    fn rule(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }

    /// The period `t` falls in, as shown in reasons; equal labels are the
    /// same period.
    fn label(self, t: &DateTime<FixedOffset>) -> String {
        let f = match self {
            Period::Hour => "%Y-%m-%d %Hh",
            Period::Day => "%Y-%m-%d",
            // ISO 8601 week: weeks start on Monday and belong to the year
            // that holds their Thursday (2024-12-30 is in 2025-W01)
            Period::Week => "%G-W%V",
            Period::Month => "%Y-%m",
            Period::Year => "%Y",
        };
        t.format(f).to_string()
    }
}

const DURATION_HINT: &str = "write a number and a unit for each part: y (years), m (months), \
     w (weeks), d (days), h (hours), e.g. 30d or 1y6m; m is months, minutes are not supported";

/// Read a keep-within span: one or more `<number><unit>` with units `y`, `m`
/// (months), `w`, `d`, `h`, each unit at most once, e.g. "30d", "12h",
/// "1y6m2w3d4h". Weeks fold into days. A span of zero is refused: it would
/// keep nothing.
pub fn parse_duration(s: &str) -> Result<Span> {
    let bad = |why: String| {
        Error::usage(format!("cannot read the duration {s:?}: {why}")).with_hint(DURATION_HINT)
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad("it is empty".into()));
    }
    let mut span = Span {
        years: 0,
        months: 0,
        days: 0,
        hours: 0,
    };
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad(format!("expected a number at {rest:?}")));
        }
        let n: u32 = rest[..digits]
            .parse()
            .map_err(|_| bad(format!("{} is too large", &rest[..digits])))?;
        let mut chars = rest[digits..].chars();
        let unit = chars
            .next()
            .ok_or_else(|| bad(format!("{n} has no unit")))?;
        if seen.contains(&unit) {
            return Err(bad(format!("unit {unit} is given twice")));
        }
        seen.push(unit);
        let too_large = || bad(format!("{n}{unit} is too large"));
        match unit {
            'y' => span.years = n,
            'm' => span.months = n,
            'w' => {
                let d = n.checked_mul(7).ok_or_else(too_large)?;
                span.days = span.days.checked_add(d).ok_or_else(too_large)?;
            }
            'd' => span.days = span.days.checked_add(n).ok_or_else(too_large)?,
            'h' => span.hours = n,
            _ => return Err(bad(format!("unknown unit {unit:?}"))),
        }
        rest = chars.as_str();
    }
    if span.years == 0 && span.months == 0 && span.days == 0 && span.hours == 0 {
        return Err(
            Error::usage(format!("the duration {s:?} is zero and would keep nothing"))
                .with_hint("omit the option instead"),
        );
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use chrono::{NaiveDate, NaiveDateTime};

    // A fake clock: every time is written out, in UTC.

    /// "YYYY-MM-DD HH:MM[:SS]" UTC → nanoseconds.
    fn at(s: &str) -> i64 {
        let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
            .unwrap_or_else(|e| panic!("bad test time {s}: {e}"));
        t.and_utc().timestamp_nanos_opt().unwrap()
    }

    fn show(ns: i64) -> String {
        let t = DateTime::from_timestamp_nanos(ns);
        if ns % 60_000_000_000 == 0 {
            t.format("%Y-%m-%d %H:%M").to_string()
        } else {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        }
    }

    fn snap(s: &str) -> Candidate {
        Candidate {
            time_ns: at(s),
            tags: Vec::new(),
        }
    }

    fn tagged(s: &str, tags: &[&str]) -> Candidate {
        Candidate {
            time_ns: at(s),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    /// Every day from `first` to `last` (inclusive, "YYYY-MM-DD") at `hhmm`,
    /// oldest first.
    fn days(first: &str, last: &str, hhmm: &str) -> Vec<String> {
        let d0 = NaiveDate::parse_from_str(first, "%Y-%m-%d").unwrap();
        let d1 = NaiveDate::parse_from_str(last, "%Y-%m-%d").unwrap();
        d0.iter_days()
            .take_while(|d| *d <= d1)
            .map(|d| format!("{d} {hhmm}"))
            .collect()
    }

    fn nightly(first: &str, last: &str) -> Vec<Candidate> {
        days(first, last, "03:00").iter().map(|s| snap(s)).collect()
    }

    /// The kept snapshots' times, newest first.
    fn kept_in(
        policy: &Policy,
        snaps: &[Candidate],
        offset: FixedOffset,
        force: bool,
    ) -> Vec<String> {
        let decisions = apply(policy, snaps, offset, force);
        assert_eq!(decisions.len(), snaps.len());
        let mut times: Vec<i64> = snaps
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| d.keep)
            .map(|(s, _)| s.time_ns)
            .collect();
        times.sort_by_key(|&t| Reverse(t));
        times.into_iter().map(show).collect()
    }

    fn kept(policy: &Policy, snaps: &[Candidate]) -> Vec<String> {
        kept_in(policy, snaps, utc(), false)
    }

    /// The reasons given for the snapshot taken at `time`.
    fn reasons(policy: &Policy, snaps: &[Candidate], time: &str) -> Vec<String> {
        let i = snaps.iter().position(|s| s.time_ns == at(time)).unwrap();
        apply(policy, snaps, utc(), false)[i].reasons.clone()
    }

    fn newest_first(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v.reverse();
        v
    }

    fn three_years() -> Vec<Candidate> {
        nightly("2023-11-21", "2026-11-20")
    }

    #[test]
    fn daily_7_over_three_years_keeps_the_7_newest_nights() {
        let snaps = three_years();
        assert_eq!(snaps.len(), 1096);
        let p = Policy {
            keep_daily: Some(7),
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &snaps),
            newest_first(days("2026-11-14", "2026-11-20", "03:00"))
        );
        assert_eq!(
            reasons(&p, &snaps, "2026-11-20 03:00"),
            ["daily 2026-11-20"]
        );
        assert_eq!(
            reasons(&p, &snaps, "2026-11-14 03:00"),
            ["daily 2026-11-14"]
        );
        assert!(reasons(&p, &snaps, "2026-11-13 03:00").is_empty());
    }

    #[test]
    fn weekly_monthly_yearly_over_three_years() {
        let snaps = three_years();
        let p = Policy {
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(3),
            ..Default::default()
        };
        // 2026-11-20 is a Friday in 2026-W47; earlier weeks end on Sundays
        let expected = [
            "2026-11-20 03:00", // W47, 2026-11, 2026
            "2026-11-15 03:00", // W46
            "2026-11-08 03:00", // W45
            "2026-11-01 03:00", // W44
            "2026-10-31 03:00",
            "2026-09-30 03:00",
            "2026-08-31 03:00",
            "2026-07-31 03:00",
            "2026-06-30 03:00",
            "2026-05-31 03:00",
            "2026-04-30 03:00",
            "2026-03-31 03:00",
            "2026-02-28 03:00",
            "2026-01-31 03:00",
            "2025-12-31 03:00", // 12th month, and 2025
            "2024-12-31 03:00", // 2024; 2023 is the 4th year, dropped
        ];
        assert_eq!(kept(&p, &snaps), expected);
        assert_eq!(
            reasons(&p, &snaps, "2026-11-20 03:00"),
            ["weekly 2026-W47", "monthly 2026-11", "yearly 2026"]
        );
        assert_eq!(reasons(&p, &snaps, "2026-11-01 03:00"), ["weekly 2026-W44"]);
        assert_eq!(
            reasons(&p, &snaps, "2025-12-31 03:00"),
            ["monthly 2025-12", "yearly 2025"]
        );
        assert_eq!(reasons(&p, &snaps, "2024-12-31 03:00"), ["yearly 2024"]);
        assert!(reasons(&p, &snaps, "2023-12-31 03:00").is_empty());
    }

    #[test]
    fn hourly_24_over_a_week_of_half_hourly_snapshots() {
        let snaps: Vec<Candidate> = days("2026-11-14", "2026-11-20", "")
            .iter()
            .flat_map(|d| {
                (0..24).flat_map(move |h| [format!("{d}{h:02}:00"), format!("{d}{h:02}:30")])
            })
            .map(|s| snap(&s))
            .collect();
        assert_eq!(snaps.len(), 7 * 48);
        let p = Policy {
            keep_hourly: Some(24),
            ..Default::default()
        };
        let expected: Vec<String> = (0..24)
            .rev()
            .map(|h| format!("2026-11-20 {h:02}:30"))
            .collect();
        assert_eq!(kept(&p, &snaps), expected);
        assert_eq!(
            reasons(&p, &snaps, "2026-11-20 03:30"),
            ["hourly 2026-11-20 03h"]
        );
        assert!(reasons(&p, &snaps, "2026-11-20 03:00").is_empty());
        assert!(reasons(&p, &snaps, "2026-11-19 23:30").is_empty());
    }

    #[test]
    fn daily_7_on_irregular_snapshots_spans_the_gaps() {
        // shuffled on purpose: the result follows the input order
        let snaps = vec![
            snap("2026-10-04 00:01"),
            snap("2026-11-20 09:00"),
            snap("2026-08-14 10:00"),
            snap("2026-11-02 08:00"),
            snap("2026-11-20 17:45"),
            snap("2026-10-05 03:00"),
            snap("2026-09-01 10:00"),
            snap("2026-11-19 12:00"),
            snap("2026-10-04 23:59"),
            snap("2026-11-20 01:00"),
            snap("2026-08-15 10:00"),
            snap("2026-11-02 22:10"),
        ];
        let p = Policy {
            keep_daily: Some(7),
            ..Default::default()
        };
        let d = apply(&p, &snaps, utc(), false);
        let keep: Vec<bool> = d.iter().map(|d| d.keep).collect();
        assert_eq!(
            keep,
            [
                false, false, false, false, true, true, true, true, true, false, true, true
            ]
        );
        assert_eq!(
            kept(&p, &snaps),
            [
                "2026-11-20 17:45",
                "2026-11-19 12:00",
                "2026-11-02 22:10",
                "2026-10-05 03:00",
                "2026-10-04 23:59",
                "2026-09-01 10:00",
                "2026-08-15 10:00",
            ]
        );
        assert_eq!(d[4].reasons, ["daily 2026-11-20"]);
        assert_eq!(d[10].reasons, ["daily 2026-08-15"]);
    }

    /// The policies our teams run today, on 81 nightly backups and one manual
    /// backup taken before a deploy.
    fn team_series() -> Vec<Candidate> {
        let mut s = nightly("2026-09-01", "2026-11-20");
        s.push(snap("2026-11-18 14:00"));
        s
    }

    fn with_manual(mut nights: Vec<String>) -> Vec<String> {
        nights.push("2026-11-18 14:00".into());
        newest_first(nights)
    }

    #[test]
    fn team_policy_keep_3() {
        let p = Policy {
            keep_last: Some(3),
            ..Default::default()
        };
        let snaps = team_series();
        assert_eq!(
            kept(&p, &snaps),
            ["2026-11-20 03:00", "2026-11-19 03:00", "2026-11-18 14:00"]
        );
        assert_eq!(reasons(&p, &snaps, "2026-11-18 14:00"), ["last 3"]);
    }

    #[test]
    fn team_policy_7_days() {
        let p = Policy {
            keep_within: Some("7d".into()),
            ..Default::default()
        };
        // 2026-11-13 03:00 is exactly 7 days before the newest: not within
        assert_eq!(
            kept(&p, &team_series()),
            with_manual(days("2026-11-14", "2026-11-20", "03:00"))
        );
        assert_eq!(
            reasons(&p, &team_series(), "2026-11-14 03:00"),
            ["within 7d"]
        );
    }

    #[test]
    fn team_policy_30_backups() {
        let p = Policy {
            keep_last: Some(30),
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &team_series()),
            with_manual(days("2026-10-23", "2026-11-20", "03:00"))
        );
    }

    #[test]
    fn team_policy_30_days() {
        let p = Policy {
            keep_within: Some("30d".into()),
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &team_series()),
            with_manual(days("2026-10-22", "2026-11-20", "03:00"))
        );
    }

    #[test]
    fn within_counts_from_the_newest_snapshot_not_from_now() {
        // backups stopped years ago; the last week of them stays
        let snaps = nightly("2019-01-01", "2019-03-01");
        let p = Policy {
            keep_within: Some("1w".into()),
            ..Default::default()
        };
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            newest_first(days("2019-02-23", "2019-03-01", "03:00"))
        );
    }

    #[test]
    fn within_a_month_back_from_march_31_stops_at_february_29() {
        let snaps = vec![
            snap("2024-02-28 12:00"),
            snap("2024-02-29 12:00"),
            snap("2024-02-29 12:00:01"),
            snap("2024-03-01 00:00"),
            snap("2024-03-31 12:00"),
        ];
        let p = Policy {
            keep_within: Some("1m".into()),
            ..Default::default()
        };
        // the calendar clamps 02-31 to 02-29; the bound itself is excluded
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            [
                "2024-03-31 12:00",
                "2024-03-01 00:00",
                "2024-02-29 12:00:01"
            ]
        );
        let p = Policy {
            keep_within: Some("1m1d".into()),
            ..Default::default()
        };
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            [
                "2024-03-31 12:00",
                "2024-03-01 00:00",
                "2024-02-29 12:00:01",
                "2024-02-29 12:00"
            ]
        );
    }

    #[test]
    fn within_a_year_back_from_a_leap_day() {
        let snaps = vec![
            snap("2023-02-28 05:00"),
            snap("2023-02-28 06:00"),
            snap("2023-02-28 07:00"),
            snap("2023-03-01 06:00"),
            snap("2024-02-29 06:00"),
        ];
        let p = Policy {
            keep_within: Some("1y".into()),
            ..Default::default()
        };
        // 1y before 2024-02-29 06:00 is 2023-02-28 06:00 (no 2023-02-29)
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            ["2024-02-29 06:00", "2023-03-01 06:00", "2023-02-28 07:00"]
        );
    }

    #[test]
    fn within_months_are_counted_on_the_local_calendar() {
        let snaps = vec![
            snap("2024-02-28 23:30"),
            snap("2024-02-28 23:31"),
            snap("2024-02-29 12:00"),
            snap("2024-03-01 00:00"),
            snap("2024-03-30 23:30"),
        ];
        let p = Policy {
            keep_within: Some("1m".into()),
            ..Default::default()
        };
        // UTC: 03-30 23:30 − 1m = 02-29 23:30 (clamped from 02-30)
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            ["2024-03-30 23:30", "2024-03-01 00:00"]
        );
        // +02:00: newest is 03-31 01:30 local, − 1m = 02-29 01:30 local,
        // which is 02-28 23:30 UTC
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            kept_in(&p, &snaps, plus2, true),
            [
                "2024-03-30 23:30",
                "2024-03-01 00:00",
                "2024-02-29 12:00",
                "2024-02-28 23:31"
            ]
        );
    }

    #[test]
    fn keep_tag_and_the_newest_of_the_series() {
        let snaps = vec![
            tagged("2026-11-01 10:00", &["pre-deploy"]),
            tagged("2026-11-05 10:00", &["nightly"]),
            tagged("2026-11-10 10:00", &["pre-deploy", "release"]),
            tagged("2026-11-15 10:00", &["release"]),
            tagged("2026-11-20 10:00", &[]),
        ];
        let p = Policy {
            keep_tag: vec!["pre-deploy".into()],
            ..Default::default()
        };
        assert_eq!(
            kept_in(&p, &snaps, utc(), false),
            ["2026-11-20 10:00", "2026-11-10 10:00", "2026-11-01 10:00"]
        );
        assert_eq!(
            reasons(&p, &snaps, "2026-11-20 10:00"),
            ["newest of its series"]
        );
        assert_eq!(reasons(&p, &snaps, "2026-11-10 10:00"), ["tag pre-deploy"]);
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            ["2026-11-10 10:00", "2026-11-01 10:00"]
        );

        let p = Policy {
            keep_tag: vec!["pre-deploy".into(), "release".into(), "release".into()],
            ..Default::default()
        };
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            ["2026-11-15 10:00", "2026-11-10 10:00", "2026-11-01 10:00"]
        );
        assert_eq!(
            reasons(&p, &snaps, "2026-11-10 10:00"),
            ["tag pre-deploy", "tag release"]
        );
    }

    #[test]
    fn the_newest_gets_no_safety_reason_when_a_rule_keeps_it() {
        let snaps = nightly("2026-11-01", "2026-11-20");
        let p = Policy {
            keep_last: Some(1),
            keep_tag: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(reasons(&p, &snaps, "2026-11-20 03:00"), ["last 1"]);
        assert_eq!(kept_in(&p, &snaps, utc(), true), ["2026-11-20 03:00"]);
    }

    #[test]
    fn the_offset_decides_which_day_2330_utc_belongs_to() {
        let snaps = vec![
            snap("2026-11-17 12:00"),
            snap("2026-11-19 12:00"),
            snap("2026-11-19 23:30"),
            snap("2026-11-20 12:00"),
        ];
        let p = Policy {
            keep_daily: Some(2),
            ..Default::default()
        };
        // UTC: 23:30 is the newest of 11-19
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            ["2026-11-20 12:00", "2026-11-19 23:30"]
        );
        // +01:00: 23:30 UTC is 00:30 on 11-20, older than 13:00 that day,
        // so 11-19 is represented by its 12:00 UTC snapshot
        let plus1 = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            kept_in(&p, &snaps, plus1, true),
            ["2026-11-20 12:00", "2026-11-19 12:00"]
        );
        let d = apply(&p, &snaps, plus1, true);
        assert_eq!(d[1].reasons, ["daily 2026-11-19"]);
        assert_eq!(d[3].reasons, ["daily 2026-11-20"]);
    }

    #[test]
    fn iso_weeks_cross_the_new_year() {
        let snaps = vec![
            snap("2024-12-29 10:00"), // Sunday, 2024-W52
            snap("2024-12-30 10:00"), // Monday, 2025-W01
            snap("2025-01-02 10:00"), // Thursday, 2025-W01
            snap("2025-01-06 10:00"), // Monday, 2025-W02
        ];
        let p = Policy {
            keep_weekly: Some(3),
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &snaps),
            ["2025-01-06 10:00", "2025-01-02 10:00", "2024-12-29 10:00"]
        );
        assert_eq!(reasons(&p, &snaps, "2025-01-02 10:00"), ["weekly 2025-W01"]);
        assert_eq!(reasons(&p, &snaps, "2024-12-29 10:00"), ["weekly 2024-W52"]);
    }

    #[test]
    fn a_young_series_also_keeps_its_oldest_snapshot() {
        // 3 days, two snapshots on the first, and a policy asking for 7 days
        let snaps = vec![
            snap("2026-11-18 01:00"),
            snap("2026-11-18 03:00"),
            snap("2026-11-19 03:00"),
            snap("2026-11-20 03:00"),
        ];
        let p = Policy {
            keep_daily: Some(7),
            ..Default::default()
        };
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            [
                "2026-11-20 03:00",
                "2026-11-19 03:00",
                "2026-11-18 03:00",
                "2026-11-18 01:00"
            ]
        );
        assert_eq!(
            reasons(&p, &snaps, "2026-11-18 01:00"),
            ["oldest daily 2026-11-18"]
        );
        // backups that began mid-year: keep-yearly 3 keeps the first one too
        let snaps = nightly("2025-06-01", "2026-11-20");
        let p = Policy {
            keep_yearly: Some(3),
            ..Default::default()
        };
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            ["2026-11-20 03:00", "2025-12-31 03:00", "2025-06-01 03:00"]
        );
        assert_eq!(
            reasons(&p, &snaps, "2025-06-01 03:00"),
            ["oldest yearly 2025"]
        );
        // a used-up count keeps no oldest
        let p = Policy {
            keep_yearly: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept_in(&p, &snaps, utc(), true),
            ["2026-11-20 03:00", "2025-12-31 03:00"]
        );
    }

    #[test]
    fn the_restic_manual_example_of_sundays() {
        // one backup every Sunday at 11:00 for 12 weeks; keep-daily 4
        let snaps: Vec<Candidate> = days("2019-09-01", "2019-11-17", "11:00")
            .iter()
            .step_by(7)
            .map(|s| snap(s))
            .collect();
        assert_eq!(snaps.len(), 12);
        let p = Policy {
            keep_daily: Some(4),
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &snaps),
            [
                "2019-11-17 11:00",
                "2019-11-10 11:00",
                "2019-11-03 11:00",
                "2019-10-27 11:00"
            ]
        );
    }

    #[test]
    fn equal_times_rank_by_position_in_the_input() {
        let t = at("2026-11-20 03:00");
        let cand = |tag: &str, time_ns| Candidate {
            time_ns,
            tags: vec![tag.into()],
        };
        let snaps = vec![cand("a", t), cand("b", t), cand("c", t - 1)];
        let p = Policy {
            keep_last: Some(1),
            ..Default::default()
        };
        let keep = |snaps: &[Candidate]| -> Vec<bool> {
            apply(&p, snaps, utc(), true)
                .iter()
                .map(|d| d.keep)
                .collect()
        };
        assert_eq!(keep(&snaps), [true, false, false]);
        let swapped = vec![snaps[1].clone(), snaps[0].clone(), snaps[2].clone()];
        assert_eq!(keep(&swapped), [true, false, false]);
        let daily = Policy {
            keep_daily: Some(1),
            ..Default::default()
        };
        let d = apply(&daily, &snaps, utc(), true);
        assert_eq!(d[0].reasons, ["daily 2026-11-20"]);
        assert!(!d[1].keep && !d[2].keep);
    }

    #[test]
    fn empty_input_empty_policy_and_invalid_policy() {
        let p = Policy {
            keep_last: Some(1),
            ..Default::default()
        };
        assert!(apply(&p, &[], utc(), false).is_empty());

        let snaps = nightly("2026-11-18", "2026-11-20");
        let all = |why: &str| {
            vec![
                Decision {
                    keep: true,
                    reasons: vec![why.into()]
                };
                3
            ]
        };
        assert_eq!(
            apply(&Policy::default(), &snaps, utc(), true),
            all("empty policy")
        );
        let broken = Policy {
            keep_within: Some("7x".into()),
            ..Default::default()
        };
        assert_eq!(apply(&broken, &snaps, utc(), true), all("invalid policy"));
        let zero = Policy {
            keep_last: Some(0),
            keep_daily: Some(1),
            ..Default::default()
        };
        assert_eq!(apply(&zero, &snaps, utc(), true), all("invalid policy"));
    }

    #[test]
    fn validate_refuses_zero_counts_and_bad_durations() {
        let zeros = [
            Policy {
                keep_last: Some(0),
                ..Default::default()
            },
            Policy {
                keep_hourly: Some(0),
                ..Default::default()
            },
            Policy {
                keep_daily: Some(0),
                ..Default::default()
            },
            Policy {
                keep_weekly: Some(0),
                ..Default::default()
            },
            Policy {
                keep_monthly: Some(0),
                ..Default::default()
            },
            Policy {
                keep_yearly: Some(0),
                ..Default::default()
            },
        ];
        for p in &zeros {
            let e = p.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
            assert!(e.message().ends_with(" is 0"), "{e}");
            assert!(e.hint().unwrap().contains("omit the option instead"), "{e}");
        }
        for bad in [
            "", "7", "7x", "d", " ", "5M", "1.5d", "-1d", "1d1d", "0d", "0y0h", "30 d",
        ] {
            let p = Policy {
                keep_within: Some(bad.into()),
                ..Default::default()
            };
            let e = p.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{bad:?}");
            assert!(e.message().starts_with("keep-within: "), "{e}");
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let p = Policy {
            keep_tag: vec!["".into()],
            ..Default::default()
        };
        assert!(p.validate().is_err());
        let good = Policy {
            keep_last: Some(3),
            keep_hourly: Some(1),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(3),
            keep_within: Some("30d".into()),
            keep_tag: vec!["pre-deploy".into()],
        };
        assert!(good.validate().is_ok());
        assert!(Policy::default().validate().is_ok());
    }

    #[test]
    fn durations() {
        let span = |years, months, days, hours| Span {
            years,
            months,
            days,
            hours,
        };
        assert_eq!(parse_duration("1y6m2w3d4h").unwrap(), span(1, 6, 17, 4));
        assert_eq!(parse_duration("30d").unwrap(), span(0, 0, 30, 0));
        assert_eq!(parse_duration("12h").unwrap(), span(0, 0, 0, 12));
        assert_eq!(parse_duration("2w").unwrap(), span(0, 0, 14, 0));
        assert_eq!(parse_duration("6m").unwrap(), span(0, 6, 0, 0));
        assert_eq!(parse_duration("90m").unwrap(), span(0, 90, 0, 0));
        assert_eq!(parse_duration("1y").unwrap(), span(1, 0, 0, 0));
        assert_eq!(parse_duration("4h1y").unwrap(), span(1, 0, 0, 4));
        assert_eq!(parse_duration(" 7d ").unwrap(), span(0, 0, 7, 0));
        assert_eq!(parse_duration("0y7d").unwrap(), span(0, 0, 7, 0));
        for too_big in ["4294967296d", "613566757w", "4294967295d1w"] {
            assert!(parse_duration(too_big).is_err(), "{too_big}");
        }
        let e = parse_duration("7x").unwrap_err();
        assert!(e.hint().unwrap().contains("minutes are not supported"));
    }

    #[test]
    fn a_huge_span_keeps_everything() {
        let snaps = nightly("2026-11-01", "2026-11-20");
        let p = Policy {
            keep_within: Some("4294967295y".into()),
            ..Default::default()
        };
        assert_eq!(kept_in(&p, &snaps, utc(), true).len(), 20);
    }

    #[test]
    fn describe_and_is_empty() {
        assert!(Policy::default().is_empty());
        assert_eq!(Policy::default().describe(), "no rules");
        let p = Policy {
            keep_last: Some(3),
            keep_daily: Some(7),
            keep_within: Some("30d".into()),
            ..Default::default()
        };
        assert!(!p.is_empty());
        assert_eq!(p.describe(), "keep-last 3, keep-daily 7, keep-within 30d");
        let p = Policy {
            keep_tag: vec!["pre-deploy".into()],
            keep_yearly: Some(2),
            keep_hourly: Some(24),
            ..Default::default()
        };
        assert!(!p.is_empty());
        assert_eq!(
            p.describe(),
            "keep-hourly 24, keep-yearly 2, keep-tag pre-deploy"
        );
    }

    #[test]
    fn policy_reads_from_toml() {
        let p: Policy =
            toml::from_str("keep-last = 3\nkeep-within = \"30d\"\nkeep-tag = [\"pre-deploy\"]\n")
                .unwrap();
        assert_eq!(
            p,
            Policy {
                keep_last: Some(3),
                keep_within: Some("30d".into()),
                keep_tag: vec!["pre-deploy".into()],
                ..Default::default()
            }
        );
        assert!(toml::from_str::<Policy>("keep-dayly = 7\n").is_err());
        assert!(toml::from_str::<Policy>("keep-daily = -1\n").is_err());
        assert_eq!(toml::from_str::<Policy>("").unwrap(), Policy::default());
    }
}
