//! Adapters: the kinds a plan names (postgres, mysql/mariadb, mongodb,
//! redis, sqlite, files, command). Each turns its source into entries of the
//! snapshot being made, with metadata (versions, positions, row counts) and
//! checks that the dump is complete. Credentials go through `secret`.

pub mod child;
pub mod drill;
pub mod mongodb;
pub mod mysql;
pub mod pgcluster;
pub mod pgroles;
pub mod pgtoc;
pub mod postgres;
pub mod redis;
pub mod secret;
pub mod sniff;
pub mod sqlite;
pub mod target;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::format::SnapshotId;
use crate::format::snapshot::{Entry, EntryKind};
use crate::pipeline::BackupSession;
use crate::plan::{Kind, Source};
use crate::repo::Repo;
use crate::select::Filter;

/// Where sources report things that are not errors.
pub trait Warn {
    fn warn(&self, message: &str);
}

impl<F: Fn(&str)> Warn for F {
    fn warn(&self, message: &str) {
        self(message)
    }
}

/// Back up one source of a plan into `session` (one entry, or more for
/// `files` with several paths and `postgres` with globals).
pub fn backup(
    session: &mut BackupSession<'_>,
    src: &Source,
    host: &str,
    warn: &dyn Warn,
) -> Result<()> {
    let r = match src.kind {
        Kind::Postgres => postgres::backup(session, src, warn),
        Kind::Mysql | Kind::Mariadb => mysql::backup(session, src, warn),
        Kind::Mongodb => mongodb::backup(session, src, warn),
        Kind::Redis => redis::backup(session, src, warn),
        Kind::Sqlite => sqlite::backup(session, src, warn),
        Kind::Files => files(session, src, host),
        Kind::Command => {
            let argv: Vec<OsString> = src.command.iter().map(OsString::from).collect();
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            let meta = base_meta(src);
            stream_command(
                session,
                &src.name,
                cmd,
                Some(redact_argv(&argv)),
                meta,
                warn,
            )
            .map(|_| ())
        }
    };
    r.map_err(|e| e.context(format!("source {}", src.name)))
}

/// The metadata every source entry starts with.
pub fn base_meta(src: &Source) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("source".into(), json!(src.name));
    m.insert("kind".into(), json!(src.kind.as_str()));
    m
}

/// The plan source an entry came from (`meta.source`), else its own name.
pub fn source_of(e: &Entry) -> &str {
    e.meta
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or(&e.name)
}

/// A private temporary directory (removed on drop).
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| Error::io("creating a directory in", &std::env::temp_dir(), e))
}

/// A name part no concurrent run repeats: UTC time and 24 random bits.
pub fn unique_stamp() -> String {
    format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        hex::encode(crate::crypto::random_array::<3>())
    )
}

/// The database a URL names in its path (percent-decoded; empty if none).
pub fn url_database(url: &url::Url) -> String {
    percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned()
}

/// `name<TAB>count` rows into a map (malformed rows skipped).
pub fn counts_from_rows(rows: Vec<Vec<String>>) -> std::collections::BTreeMap<String, u64> {
    rows.into_iter()
        .filter(|r| r.len() == 2)
        .filter_map(|r| Some((r[0].clone(), r[1].parse().ok()?)))
        .collect()
}

/// The entries of `snap` that source `name` made (the entry of that name, or
/// `NAME/…` entries of a files source with several paths).
pub fn entries_of<'s>(snap: &'s crate::format::snapshot::Snapshot, name: &str) -> Vec<&'s Entry> {
    snap.entries
        .iter()
        .filter(|e| e.name == name || source_of(e) == name)
        .filter(|e| !e.name.ends_with(".globals") || e.name == name)
        .collect()
}

/// `files`: one tree entry per path, named after the source when there is one
/// path and `SOURCE/BASENAME` when there are several.
fn files(session: &mut BackupSession<'_>, src: &Source, host: &str) -> Result<()> {
    let many = src.paths.len() > 1;
    let mut names = Vec::new();
    for p in &src.paths {
        let name = if many {
            let base = crate::pipeline::normalize_root(p)?
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{}/{}", src.name, base)
        } else {
            src.name.clone()
        };
        if names.contains(&name) {
            return Err(Error::usage(format!(
                "two paths of source {:?} end in the same name ({name})",
                src.name
            ))
            .with_hint("give them their own sources"));
        }
        names.push(name.clone());
        let parent = parent_for(session.repo(), &name, p, host)?;
        session.tree(&name, p, parent.as_ref().map(|(id, e)| (*id, e)))?;
        let mut meta = base_meta(src);
        meta.insert("path".into(), json!(p.to_string_lossy()));
        session.entry_mut(&name).expect("just added").meta = meta;
    }
    Ok(())
}

/// The newest snapshot (of this host) whose entry `name` is a tree read from
/// the same path: its unchanged files are reused without reading them.
pub fn parent_for(
    repo: &Repo,
    name: &str,
    path: &Path,
    host: &str,
) -> Result<Option<(SnapshotId, Entry)>> {
    let rows = repo.index().snapshots()?;
    let f = Filter {
        name: Some(name.to_string()),
        tags: Vec::new(),
        host: Some(host.to_string()),
    };
    let abs = crate::pipeline::normalize_root(path)?;
    for row in rows.iter().rev().filter(|r| f.matches(r)) {
        let snap = match repo.load_snapshot(&row.id) {
            Ok(s) => s,
            Err(_) => continue,
        };
        if let Some(e) = snap.entry(name)
            && e.kind == EntryKind::Tree
            && e.path.as_ref().map(|p| p.as_os()) == Some(abs.as_os_str())
        {
            return Ok(Some((row.id, e.clone())));
        }
    }
    Ok(None)
}

/// What a stored stream looked like: for format checks after the fact.
pub struct Streamed {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

/// Run `cmd` without a shell and store its stdout as stream entry `name`.
/// No entry unless it exits 0 and printed something; its stderr is passed on
/// as warnings. Warns when the stream is already compressed.
pub fn stream_command(
    session: &mut BackupSession<'_>,
    name: &str,
    cmd: Command,
    argv_for_record: Option<Vec<String>>,
    meta: Map<String, Value>,
    warn: &dyn Warn,
) -> Result<Streamed> {
    let mut run = child::Running::spawn(cmd, Stdio::null())?;
    let program = run.program.clone();
    let mut sniff = sniff::Sniff::new(run.stdout());
    let stored = session.stream(name, &mut sniff, argv_for_record, meta);
    let stored = stored.map(|_| ());
    if stored.is_err() {
        run.kill();
    }
    let (status, lines) = run.wait()?;
    // the tool's failure explains an empty or cut stream better than we can
    let failed = child::check_status(&program, status, &lines, "no snapshot was made");
    if let Err(e) = failed {
        session.discard(name);
        return Err(e);
    }
    stored?;
    for l in lines.iter().filter(|l| !l.is_empty()) {
        warn.warn(&format!("{program}: {l}"));
    }
    let streamed = Streamed {
        head: std::mem::take(&mut sniff.head),
        tail: sniff.tail().to_vec(),
    };
    warn_if_compressed(name, &streamed.head, warn);
    Ok(streamed)
}

pub fn warn_if_compressed(name: &str, head: &[u8], warn: &dyn Warn) {
    if let Some(c) = sniff::compression(head) {
        warn.warn(&format!(
            "{name}: the input is {c}-compressed; it was stored, but compressed input defeats \
             deduplication (every backup stores it again): give coffre the uncompressed dump"
        ));
    }
}

/// A dump that lacks its end-of-dump trailer was cut short: drop its entry.
pub fn require_trailer(
    session: &mut BackupSession<'_>,
    name: &str,
    streamed: &Streamed,
    trailer: &[u8],
    program: &str,
) -> Result<()> {
    if sniff::contains(&streamed.tail, trailer) {
        return Ok(());
    }
    session.discard(name);
    Err(Error::new(
        ErrorKind::CommandFailed,
        format!(
            "{name}: the output of {program} does not end with {:?}: the dump is incomplete; no \
             snapshot was made",
            String::from_utf8_lossy(trailer)
        ),
    ))
}

/// Remove what looks like a secret from a command line before it is stored:
/// `--password=…`, `-pSECRET` (mysql style), and passwords inside URLs.
pub fn redact_argv(argv: &[OsString]) -> Vec<String> {
    let mut out = Vec::new();
    let mut hide_next = false;
    for a in argv {
        let a = a.to_string_lossy().into_owned();
        if hide_next {
            out.push("***".into());
            hide_next = false;
            continue;
        }
        let lower = a.to_ascii_lowercase();
        if lower == "--password" || lower == "--pass" {
            hide_next = true;
            out.push(a);
        } else if let Some(eq) = a
            .find('=')
            .filter(|_| lower.starts_with("--pass") || lower.contains("password="))
        {
            out.push(format!("{}=***", &a[..eq]));
        } else if a.starts_with("-p") && a.len() > 2 && !a.starts_with("--") {
            out.push("-p***".into());
        } else if let Some(redacted) = redact_url(&a) {
            out.push(redacted);
        } else {
            out.push(a);
        }
    }
    out
}

fn redact_url(a: &str) -> Option<String> {
    let scheme_end = a.find("://")?;
    let rest = &a[scheme_end + 3..];
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    let colon = userinfo.find(':')?;
    Some(format!(
        "{}{}:***{}",
        &a[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let argv: Vec<OsString> = [
            "mysqldump",
            "-psecret",
            "--password=hunter2",
            "--password",
            "x",
            "postgresql://app:pw@db/app",
            "-Fc",
            "--port=5",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let out = redact_argv(&argv).join(" ");
        assert!(
            !out.contains("secret") && !out.contains("hunter2") && !out.contains(":pw@"),
            "{out}"
        );
        assert!(
            out.contains("postgresql://app:***@db/app")
                && out.contains("-Fc")
                && out.contains("--port=5"),
            "{out}"
        );
    }
}
