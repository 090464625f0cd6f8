//! Command-line arguments (clap). Validation into ready-to-run settings
//! happens in the command files.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "coffre",
    version,
    about = "Encrypted, deduplicating backups of database dumps and volumes"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Repository: a directory, sftp://[USER@]HOST[:PORT]/PATH or s3://BUCKET[/PREFIX]
    #[arg(long, short = 'r', env = "COFFRE_REPO", global = true)]
    pub repo: Option<String>,
    /// Read the password from the first line of this file
    #[arg(long, env = "COFFRE_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this command (no shell) and use the first line it prints as password
    #[arg(long, env = "COFFRE_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// No progress bars
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Plan file (default: ./coffre.toml when it exists)
    #[arg(long, env = "COFFRE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// How long to wait for a conflicting repository lock (e.g. 30s, 10m, 1h)
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_wait, default_value = "0s")]
    pub lock_wait: std::time::Duration,
}

/// "30s", "10m", "2h" or a number of seconds.
fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 10m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?} is not a duration like 30s, 10m, 1h or 2d")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a repository
    Init(InitArgs),
    /// Back up a command's output, stdin, or files and directories
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List the entries of a snapshot, or the files of a tree entry
    Ls(LsArgs),
    /// Restore an entry into a directory, a file, or a command's stdin
    Restore(RestoreArgs),
    /// Write a stream entry to stdout
    Dump(DumpArgs),
    /// Restore drill: restore into something disposable, check row counts, run a query, clean up
    Drill(DrillArgs),
    /// Check the repository's structure (keys, packs, index, snapshots, trees) without reading data
    Check(CheckArgs),
    /// Health for monitoring: backup age and size per series, scrub coverage and damage, free space (exit 0 ok, 1 warning, 2 critical)
    Health(HealthArgs),
    /// Rebuild derived state from the repository
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Read back and verify every pack and blob (issue 5 adds subsets and budgets)
    Scrub(ScrubArgs),
    /// Manage key files (passwords)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Remove snapshots by a retention policy, per series (--dry-run to preview)
    Forget(ForgetArgs),
    /// Delete data no snapshot references and repack mostly-unused packs
    Prune(PruneArgs),
    /// Copy the repository's encrypted objects to another place (only what it lacks; never deletes)
    Sync(SyncArgs),
    /// Remove stale repository locks (of processes that are gone or stopped refreshing)
    Unlock(UnlockArgs),
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// … of each of the last N days
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// … of each of the last N ISO weeks
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// … of each of the last N months
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// … of each of the last N years
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this span of the series' newest (e.g. 7d, 30d, 1y6m)
    #[arg(long, value_name = "SPAN")]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
    /// Only series whose snapshots have an entry of this name
    #[arg(long)]
    pub name: Option<String>,
    /// Only snapshots of this host
    #[arg(long)]
    pub host: Option<String>,
    /// Allow forgetting the newest snapshot of a series when no rule keeps it
    #[arg(long)]
    pub force: bool,
    /// Show what would be forgotten and why each survivor stays; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Run prune afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_opts: PruneOpts,
    /// Report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PruneOpts {
    /// Repack packs with more than this share unused (e.g. 10%)
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = parse_percent)]
    pub max_unused: f64,
    /// Repack at most this much (e.g. 2G, 500M; default: no limit)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_repack: Option<u64>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub opts: PruneOpts,
    /// Show what would be deleted and repacked; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage like 10%"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("{s:?} is not between 0% and 100%"));
    }
    Ok(n / 100.0)
}

pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size like 500M or 2G");
    let (n, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = n.parse().map_err(|_| bad())?;
    n.checked_mul(mult).ok_or_else(bad)
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Where the copy lives: a directory, sftp://[USER@]HOST[:PORT]/PATH or s3://BUCKET[/PREFIX]
    /// (default: every [[sync]] target of the plan)
    #[arg(long, value_name = "LOCATION")]
    pub to: Option<String>,
    /// Objects copied at once (default 4, or the plan's)
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Send at most this many bytes per second (e.g. 500K, 20M)
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    pub bwlimit: Option<u64>,
    /// Also read back this share of what the copy already holds (e.g. 5%, 1/30) and send again what differs
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    pub verify: Option<f64>,
    /// Delete on the copy the snapshots forgotten here and the packs pruned here
    #[arg(long)]
    pub prune_remote: bool,
    /// Sync even if the copy lacks snapshots it held after the last sync
    #[arg(long)]
    pub accept_remote_state: bool,
    /// Report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, also those still being refreshed
    #[arg(long)]
    pub all: bool,
    /// Print what was removed as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Argon2id memory in MiB (8..=4096)
    #[arg(long, default_value_t = 64)]
    pub kdf_memory: u32,
    /// Argon2id iterations (1..=16)
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
    /// Argon2id parallelism (1..=16)
    #[arg(long, default_value_t = 4)]
    pub kdf_parallelism: u32,
    /// zstd level for new data (1..=19)
    #[arg(long, default_value_t = 2)]
    pub compression: i32,
    /// Average chunk size in KiB (min is 1/4, max 4x)
    #[arg(long, default_value_t = 2048)]
    pub chunk_size: u32,
    /// Target pack size in MiB
    #[arg(long, default_value_t = 8)]
    pub pack_size: u32,
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots holding this entry (restore: the entry, or a plan source's entries)
    #[arg(long, short = 'n', visible_alias = "only")]
    pub name: Option<String>,
    /// Only snapshots with this tag (repeatable; all must match)
    #[arg(long = "tag", short = 't')]
    pub tags: Vec<String>,
    /// Only snapshots from this host
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Do not sync to the plan's `after-backup` targets this time
    #[arg(long)]
    pub no_sync: bool,
    /// Name of the entry (e.g. postgres/app, uploads); without it, the plan's sources run
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Plan mode: run only this source (repeatable)
    #[arg(long, conflicts_with = "name")]
    pub only: Vec<String>,
    /// Plan mode: commit a snapshot marked partial when some sources fail (exit 3)
    #[arg(long, conflicts_with = "name")]
    pub allow_partial: bool,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", short = 't')]
    pub tags: Vec<String>,
    /// Record this host name instead of the machine's
    #[arg(long)]
    pub host: Option<String>,
    /// Read back every sealed chunk before writing it, not one in 16 (about a fifth more CPU)
    #[arg(long)]
    pub verify_all: bool,
    /// Store standard input as a stream
    #[arg(long, conflicts_with = "paths")]
    pub stdin: bool,
    /// Print a JSON summary line on stdout
    #[arg(long)]
    pub json: bool,
    /// Do not use the previous snapshot to skip unchanged files
    #[arg(long)]
    pub no_parent: bool,
    /// The file or directory to back up
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,
    /// After `--`: a command whose stdout is stored (run without a shell)
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SelectArgs {
    /// latest, latest~N, or a snapshot id prefix
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// The newest snapshot at or before this time (RFC 3339 or local 'YYYY-MM-DD[ HH:MM[:SS]]')
    #[arg(long)]
    pub at: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Where to restore: postgresql://…, mysql://…, mariadb://…, mongodb://…, redis://…, or a
    /// path (SQLite file, directory, file). Default: the plan source the entry came from
    #[arg(long, conflicts_with_all = ["target", "into"])]
    pub to: Option<String>,
    /// The target server's password, first line of this file (else the plan's, or the tool's
    /// usual environment such as PGPASSWORD)
    #[arg(long)]
    pub to_password_file: Option<PathBuf>,
    /// Do not ask for confirmation (needed when not on a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show the plan and verify every chunk of the entry; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// PostgreSQL: drop and recreate the database in place instead of restoring beside it
    #[arg(long)]
    pub replace: bool,
    /// Do not back up the target before replacing it
    #[arg(long)]
    pub no_safety_snapshot: bool,
    /// PostgreSQL: pg_restore --jobs N (the archive is first written to a temp file)
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// PostgreSQL: restore only this table (repeatable) into the existing database
    #[arg(long = "table")]
    pub tables: Vec<String>,
    /// Tree entries: restore only this file or directory (relative to the entry's root)
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Directory (tree entries) or file (stream entries) to restore into
    #[arg(long, conflicts_with = "into")]
    pub target: Option<PathBuf>,
    /// Pipe a stream entry into the command given after `--`
    #[arg(long)]
    pub into: bool,
    /// Restore into a non-empty directory or over an existing file
    #[arg(long)]
    pub overwrite: bool,
    /// The command for --into
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct DrillArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// A server for the scratch database (postgresql://…, mysql://…, mongodb://…); PostgreSQL
    /// defaults to a throwaway cluster, SQLite and Redis need none
    #[arg(long)]
    pub to: Option<String>,
    /// The server's password, first line of this file
    #[arg(long)]
    pub to_password_file: Option<PathBuf>,
    /// A check to run on the restored data (SQL; a command for Redis); its failure fails the drill
    #[arg(long)]
    pub query: Option<String>,
    /// JSON report on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// Critical when a series' newest snapshot is older than this (e.g. 26h, 2d)
    #[arg(long, value_name = "DURATION", default_value = "26h", value_parser = parse_wait)]
    pub max_age: std::time::Duration,
    /// Warn when the newest snapshot is smaller than this share of the previous one
    #[arg(long, value_name = "PERCENT", default_value = "50%", value_parser = parse_percent)]
    pub min_size_ratio: f64,
    /// Scrub coverage counts packs verified within this many days
    #[arg(long, value_name = "DAYS", default_value_t = 8)]
    pub scrub_days: u32,
    /// Warn when less than this share of the packs was verified within --scrub-days
    #[arg(long, value_name = "PERCENT", default_value = "100%", value_parser = parse_percent)]
    pub min_coverage: f64,
    /// Warn when the repository's file system has less than this share free (critical below half of it)
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = parse_percent)]
    pub min_free: f64,
    /// Only series with an entry of this name
    #[arg(long)]
    pub name: Option<String>,
    /// Also write the metrics to this file for node_exporter's textfile collector (atomically)
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// Report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// JSON report on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ScrubArgs {
    /// Verify every pack
    #[arg(long, conflicts_with = "subset")]
    pub all: bool,
    /// Verify this share of the packs, those verified longest ago first (1/7, 10%)
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    pub subset: Option<f64>,
    /// Start no new pack after this long (e.g. 20m); the oldest-verified go first
    #[arg(long, value_name = "DURATION", value_parser = parse_wait)]
    pub max_duration: Option<std::time::Duration>,
    /// Read at most about this much (e.g. 10G); the oldest-verified go first
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_bytes: Option<u64>,
    /// JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

/// "1/7" or "10%".
pub(super) fn parse_share(s: &str) -> Result<f64, String> {
    let bad = || format!("{s:?} is not a share like 1/7 or 10%");
    let f = if let Some((n, d)) = s.split_once('/') {
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        let d: f64 = d.trim().parse().map_err(|_| bad())?;
        if d == 0.0 {
            return Err(bad());
        }
        n / d
    } else {
        parse_percent(s)?
    };
    if f <= 0.0 || f > 1.0 {
        return Err(format!("{s:?} must be more than 0 and at most all"));
    }
    Ok(f)
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the SQLite index from the packs and snapshot objects (the old one stays until the new one is complete)
    Index,
    /// List snapshots whose entries reference lost or damaged data; --apply rewrites them without those entries
    Snapshots(RepairSnapshotsArgs),
}

#[derive(Args, Debug)]
pub struct RepairSnapshotsArgs {
    /// Rewrite (or forget) the damaged snapshots; without it nothing changes
    #[arg(long)]
    pub apply: bool,
    /// Report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key file with a new password (COFFRE_NEW_PASSWORD, --new-password-file, or a prompt)
    Add(NewPasswordArgs),
    /// List key files
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a key file
    Remove { id: String },
    /// Change the password of the key file in use
    Passwd(NewPasswordArgs),
}

#[derive(Args, Debug)]
pub struct NewPasswordArgs {
    /// Read the new password from this file
    #[arg(long, env = "COFFRE_NEW_PASSWORD_FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Argon2id memory in MiB for the new key file
    #[arg(long, default_value_t = 64)]
    pub kdf_memory: u32,
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
    #[arg(long, default_value_t = 4)]
    pub kdf_parallelism: u32,
}
