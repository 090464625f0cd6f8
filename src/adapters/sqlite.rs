//! SQLite: a consistent copy through SQLite's online backup API (never a raw
//! copy of a live file, which can tear across a write or miss the WAL), and a
//! restore that checks the copy and replaces the file atomically.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use super::secret::SecretDir;
use super::{Warn, base_meta};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::BackupSession;
use crate::plan::Source;

fn sql_err(what: &str, path: &Path, e: rusqlite::Error) -> Error {
    Error::new(
        ErrorKind::CommandFailed,
        format!("SQLite {what} {}: {e}", path.display()),
    )
}

/// Rows of every table of the database at `path`.
pub fn row_counts(conn: &Connection, path: &Path) -> Result<BTreeMap<String, u64>> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
        .map_err(|e| sql_err("reading the schema of", path, e))?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| sql_err("reading the schema of", path, e))?;
    let mut out = BTreeMap::new();
    for n in names {
        let q = format!("SELECT count(*) FROM \"{}\"", n.replace('"', "\"\""));
        let c: i64 = conn
            .query_row(&q, [], |r| r.get(0))
            .map_err(|e| sql_err("counting rows in", path, e))?;
        out.insert(n, c as u64);
    }
    Ok(out)
}

/// `PRAGMA integrity_check` must answer "ok".
pub fn integrity_check(conn: &Connection, path: &Path) -> Result<()> {
    let r: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| sql_err("checking", path, e))?;
    if r != "ok" {
        return Err(Error::corrupt(format!(
            "SQLite integrity check of {} failed: {r}",
            path.display()
        )));
    }
    Ok(())
}

pub fn backup(session: &mut BackupSession<'_>, src: &Source, _warn: &dyn Warn) -> Result<()> {
    let path = &src.paths[0];
    if !path.is_file() {
        return Err(Error::not_found(format!(
            "SQLite database {} does not exist",
            path.display()
        )));
    }
    let live = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sql_err("opening", path, e))?;
    let scratch = SecretDir::new()?;
    let copy_path = scratch.path().join("copy.sqlite");
    let mut copy = Connection::open(&copy_path).map_err(|e| sql_err("creating", &copy_path, e))?;
    {
        let b = rusqlite::backup::Backup::new(&live, &mut copy)
            .map_err(|e| sql_err("starting the backup of", path, e))?;
        // all pages in one step (-1): the copy is one consistent read
        // transaction; a writer holding a lock makes us wait and retry
        let mut tries = 0;
        loop {
            use rusqlite::backup::StepResult;
            match b.step(-1).map_err(|e| sql_err("copying", path, e))? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if tries < 200 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::CommandFailed,
                        format!("SQLite database {} stayed locked for 10 s", path.display()),
                    )
                    .with_hint("retry when the writer is idle"));
                }
            }
        }
    }
    drop(live);
    let counts = row_counts(&copy, &copy_path)?;
    integrity_check(&copy, &copy_path)?;
    copy.pragma_update(None, "journal_mode", "DELETE")
        .map_err(|e| sql_err("finishing the copy of", path, e))?;
    drop(copy);
    let mut meta = base_meta(src);
    meta.insert("path".into(), json!(path.to_string_lossy()));
    meta.insert("format".into(), json!("sqlite"));
    meta.insert("server_version".into(), json!(rusqlite::version()));
    meta.insert("row_counts".into(), json!(counts));
    let mut f = std::fs::File::open(&copy_path).map_err(|e| Error::io("opening", &copy_path, e))?;
    session.stream(&src.name, &mut f, None, meta)?;
    Ok(())
}

/// Write the database beside `target`, check it (integrity, row counts),
/// then rename it over `target` while holding an exclusive lock on the old
/// one, and remove the old file's WAL so that it cannot be replayed into the
/// new one.
pub fn restore(
    repo: &crate::repo::Repo,
    entry: &crate::format::snapshot::Entry,
    target: &Path,
    progress: &dyn crate::pipeline::Progress,
) -> Result<super::postgres::Outcome> {
    let tmp = super::target::write_beside(repo, entry, target, true, progress)?;
    let mut out = super::postgres::Outcome::default();
    {
        let check = Connection::open_with_flags(tmp.path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| sql_err("opening", tmp.path(), e))?;
        integrity_check(&check, tmp.path())?;
        if let Some(recorded) = super::postgres::recorded_counts(&entry.meta) {
            out.mismatches =
                super::postgres::count_differences(&recorded, &row_counts(&check, tmp.path())?);
        }
    }
    // hold the old database's write lock across the swap: nobody is in the
    // middle of a write to it when it is replaced
    let old = if target.exists() {
        let c = Connection::open(target).map_err(|e| sql_err("opening", target, e))?;
        c.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| sql_err("opening", target, e))?;
        c.execute_batch("BEGIN EXCLUSIVE")
            .map_err(|e| sql_err("locking", target, e))?;
        Some(c)
    } else {
        None
    };
    let dir = tmp.persist()?;
    // closing the old connection may checkpoint into the old file; only then
    // are its WAL and index left over for removal
    drop(old);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = target.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
    crate::storage::sync_dir(&dir).map_err(|e| Error::io("syncing", &dir, e))?;
    out.notes.push(format!(
        "{} replaced (integrity check ok); applications holding it open must reopen it",
        target.display()
    ));
    Ok(out)
}
