//! The command-line interface: parse, run one command, map errors to exit codes.

/// `println!` that returns an error instead of panicking (a closed pipe is
/// then mapped to success by `main`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)
            .map_err(|e| $crate::error::Error::other(format!("writing output: {e}")).with_source(e))?;
    }};
}

mod args;
mod backup;
mod check;
mod drill;
mod forget;
mod health;
mod init;
mod key;
mod list;
mod password;
mod progress;
mod prune;
mod repair;
mod restore;
mod scrub;
mod sync;
mod unlock;

use clap::Parser;

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::storage::Location;
use args::{Cli, Command, FilterArgs, Global};

/// Exit code when a backup was saved but some files could not be read.
pub const EXIT_INCOMPLETE: i32 = 3;

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    // SAFETY: umask has no preconditions. Everything coffre creates is private.
    unsafe {
        libc::umask(0o077);
    }
    // Large buffers (chunks up to 8 MiB) are allocated on one thread and freed
    // on another; with glibc's sliding mmap threshold they end up in arenas
    // that never shrink (RSS grew with the input: 400 MB for a 1 GB dump). A
    // fixed mmap threshold returns them to the system; two arenas and an
    // 8 MiB trim threshold bound what freed memory is kept. The threshold is
    // 1 MiB, below the average chunk: at 4 MiB, the sealed blobs and chunk
    // buffers under it piled up in the arenas between packs, and a backup of
    // 256 MiB of noise peaked at 74-101 MiB (59-77 at 1 MiB; the anchors
    // backups 83-86 -> 74 MiB, as fast: pooled buffers are not reallocated).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => 0,
        Err(e) => {
            // messages carry text from outside: file names, a child's stderr,
            // a remote server's reply; none of it may drive the terminal
            let message = e.to_string();
            eprintln!("coffre: error: {}", crate::format::label::shown(&message));
            e.kind().exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let (g, plan) = with_plan(cli.global)?;
    let g = &g;
    match cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Backup(a) => backup::run(g, plan.as_ref(), a),
        Command::Snapshots(a) => list::snapshots(g, a),
        Command::Ls(a) => list::ls(g, a),
        Command::Restore(a) => restore::restore(g, plan.as_ref(), a),
        Command::Dump(a) => restore::dump(g, a),
        Command::Drill(a) => drill::run(g, plan.as_ref(), a),
        Command::Scrub(a) => scrub::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Health(a) => health::run(g, a),
        Command::Repair(args::RepairCommand::Index) => repair::index(g),
        Command::Repair(args::RepairCommand::Snapshots(a)) => repair::snapshots(g, a),
        Command::Key(k) => key::run(g, k),
        Command::Unlock(a) => unlock::run(g, a),
        Command::Sync(a) => sync::run(g, plan.as_ref(), a),
        Command::Forget(a) => forget::run(g, plan.as_ref(), a),
        Command::Prune(a) => prune::run(g, a),
    }
}

/// Load the plan (`--config`, else ./coffre.toml if present) and let it
/// supply the repository and its password where the command line did not.
fn with_plan(mut g: Global) -> Result<(Global, Option<crate::plan::Plan>)> {
    let plan = crate::plan::Plan::find(g.config.as_deref())?;
    if let Some(p) = &plan {
        let r = &p.repository;
        if g.repo.is_none() {
            g.repo = r.path.clone();
        }
        if g.password_file.is_none() && g.password_command.is_none() {
            g.password_file = r.password_file.clone();
            g.password_command = r.password_command.clone();
        }
    }
    Ok((g, plan))
}

fn repo_location(g: &Global) -> Result<Location> {
    let s = g.repo.as_deref().ok_or_else(|| {
        Error::usage("no repository given")
            .with_hint("pass --repo PATH, set COFFRE_REPO, or name it in the plan (coffre.toml)")
    })?;
    Location::parse(s)
}

fn open_repo(g: &Global) -> Result<Repo> {
    let location = repo_location(g)?;
    Repo::open(&location, || password::get(g))
}

/// Open the repository and take a lock for `command`: shared for backups
/// and reads, exclusive for prune (format-spec/locks.md).
fn open_locked(g: &Global, exclusive: bool, command: &str) -> Result<Repo> {
    let location = repo_location(g)?;
    Repo::open_locked(
        &location,
        || password::get(g),
        exclusive,
        command,
        g.lock_wait,
    )
}

fn filter(f: &FilterArgs) -> crate::select::Filter {
    crate::select::Filter {
        name: f.name.clone(),
        tags: f.tags.clone(),
        host: f.host.clone(),
    }
}

fn local_time(ns: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn rfc3339(ns: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_nanos(ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Print a JSON value on stdout, as one line.
fn print_json(v: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}").map_err(|e| Error::other(format!("writing output: {e}")).with_source(e))
}
