//! Restore targets: where an entry goes back to (a database server, an
//! SQLite file, a directory, a file), what restoring there destroys, how to
//! take a safety snapshot of it first, and the restore itself.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::mongodb::MongoConn;
use super::mysql::MyConn;
use super::postgres::{Outcome, PgConn, PgRestore};
use super::redis::RedisConn;
use super::secret::{Secret, split_url_password};
use crate::error::{Error, Result};
use crate::format::snapshot::{Entry, EntryKind};
use crate::pipeline::{Progress, RestoreOptions, restore_stream, restore_tree};
use crate::plan::{Kind, PgFormat, Source};
use crate::repo::Repo;

pub enum Target {
    Postgres(PgConn, PgRestore),
    Mysql(MyConn),
    Mongo(MongoConn),
    Redis(RedisConn),
    Sqlite(PathBuf),
    Dir(PathBuf),
    File(PathBuf),
}

/// The kind of source an entry came from (`meta.kind`), else what its shape says.
pub fn entry_kind(e: &Entry) -> Kind {
    let k = e.meta.get("kind").and_then(Value::as_str).unwrap_or("");
    match k {
        "postgres" => Kind::Postgres,
        "mysql" => Kind::Mysql,
        "mariadb" => Kind::Mariadb,
        "mongodb" => Kind::Mongodb,
        "redis" => Kind::Redis,
        "sqlite" => Kind::Sqlite,
        _ if e.kind == EntryKind::Tree => Kind::Files,
        _ => Kind::Command,
    }
}

/// A resolved target and the plan source that takes its safety snapshot.
pub struct Resolved {
    pub target: Target,
    /// Describes the target for a backup of its current state.
    pub safety: Source,
}

/// Where `entry` goes: `to` (a URL or a path), else the plan source it came
/// from, else (for trees) the path it was read from.
pub fn resolve(
    entry: &Entry,
    to: Option<&str>,
    source: Option<&Source>,
    password: Option<Secret>,
    pg: PgRestore,
) -> Result<Resolved> {
    let kind = entry_kind(entry);
    let raw: String = match (to, source) {
        (Some(t), _) => t.to_string(),
        (None, Some(s)) if s.url.is_some() => s.url.clone().unwrap(),
        (None, Some(s)) if s.paths.len() == 1 => s.paths[0].to_string_lossy().into_owned(),
        _ => match (&entry.path, kind) {
            (Some(p), Kind::Files) => p.lossy(),
            _ => {
                return Err(
                    Error::usage(format!("where should {} go?", entry.name)).with_hint(
                        "pass --to URL or PATH (or restore through the plan that made it)",
                    ),
                );
            }
        },
    };
    // the plan source's password serves when the target is that source
    let password = match (password, source, to) {
        (Some(p), _, _) => Some(p),
        (None, Some(s), None) => super::secret::source_password(s)?,
        _ => None,
    };
    let scheme = raw.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let want = |ok: &[Kind], what: &str| -> Result<()> {
        if ok.contains(&kind) {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "entry {} is a {} backup; it cannot be restored into {what}",
                entry.name,
                kind.as_str()
            )))
        }
    };
    let bin_dir = source.and_then(|s| s.bin_dir.clone());
    let mut safety = Source {
        name: entry.name.clone(),
        kind,
        url: None,
        password_file: None,
        password_env: None,
        paths: Vec::new(),
        command: Vec::new(),
        format: PgFormat::Custom,
        globals: false,
        order_by_primary: false,
        bin_dir: bin_dir.clone(),
    };
    let with_password = |raw: &str| -> Result<String> {
        let (mut u, from_url) = split_url_password(raw)?;
        if let Some(p) = password.as_ref().or(from_url.as_ref()) {
            let _ = u.set_password(Some(
                &percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            ));
        }
        Ok(u.to_string())
    };
    let target = match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            want(&[Kind::Postgres], "PostgreSQL")?;
            safety.url = Some(with_password(&raw)?);
            safety.format = match entry.meta.get("format").and_then(Value::as_str) {
                Some("plain") => PgFormat::Plain,
                _ => PgFormat::Custom,
            };
            Target::Postgres(PgConn::new(&raw, password.clone(), bin_dir.as_deref())?, pg)
        }
        Some("mysql" | "mariadb") => {
            want(&[Kind::Mysql, Kind::Mariadb], "MySQL")?;
            safety.url = Some(with_password(&raw)?);
            Target::Mysql(MyConn::new(
                &raw,
                password.clone(),
                bin_dir.as_deref(),
                kind == Kind::Mariadb,
            )?)
        }
        Some("mongodb" | "mongodb+srv") => {
            want(&[Kind::Mongodb], "MongoDB")?;
            safety.url = Some(with_password(&raw)?);
            Target::Mongo(MongoConn::new(&raw, password.clone(), bin_dir.as_deref())?)
        }
        Some("redis") => {
            want(&[Kind::Redis], "Redis")?;
            safety.url = Some(with_password(&raw)?);
            Target::Redis(RedisConn::new(&raw, password.clone(), bin_dir.as_deref())?)
        }
        Some(other) => {
            return Err(
                Error::usage(format!("unknown target scheme {other}://")).with_hint(
                    "postgresql://, mysql://, mariadb://, mongodb://, redis://, or a path",
                ),
            );
        }
        None => {
            let path = PathBuf::from(raw.strip_prefix("file:").unwrap_or(&raw));
            safety.kind = Kind::Files;
            safety.paths = vec![path.clone()];
            match (kind, entry.kind) {
                (Kind::Sqlite, _) => {
                    safety.kind = Kind::Sqlite;
                    Target::Sqlite(path)
                }
                (_, EntryKind::Tree) => Target::Dir(path),
                (_, EntryKind::Stream) => Target::File(path),
            }
        }
    };
    Ok(Resolved { target, safety })
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Postgres(c, _) => c.display(),
            Target::Mysql(c) => c.display().to_string(),
            Target::Mongo(c) => c.display().to_string(),
            Target::Redis(c) => c.display().to_string(),
            Target::Sqlite(p) => format!("SQLite file {}", p.display()),
            Target::Dir(p) => format!("path {}", p.display()),
            Target::File(p) => format!("file {}", p.display()),
        }
    }

    /// Whether the restore replaces something that exists (and so needs
    /// confirmation and a safety snapshot).
    pub fn exists(&self) -> Result<bool> {
        Ok(match self {
            Target::Postgres(c, _) => c.database_exists(&c.database)?,
            Target::Mysql(c) => super::mysql::database_exists(c, &c.database)?,
            // a MongoDB or Redis server always holds a dataset to replace
            Target::Mongo(_) | Target::Redis(_) => true,
            Target::Sqlite(p) | Target::File(p) => p.exists(),
            Target::Dir(p) => {
                std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some()) || p.is_file()
            }
        })
    }

    pub fn steps(&self, entry: &Entry, exists: bool) -> Vec<String> {
        let format = entry
            .meta
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("custom");
        match self {
            Target::Postgres(c, o) => super::postgres::restore_steps(c, exists, o, format),
            Target::Mysql(c) => vec![
                format!(
                    "DROP DATABASE IF EXISTS {0}; CREATE DATABASE {0}",
                    c.database
                ),
                "load the dump with the mysql client".into(),
                "compare row counts with the backup's".into(),
            ],
            Target::Mongo(_) => {
                vec!["mongorestore --archive --drop (replaces the dumped collections)".into()]
            }
            Target::Redis(_) => vec![
                "write the RDB over the server's dbfilename (atomic rename)".into(),
                "DEBUG RELOAD NOSAVE, or SHUTDOWN NOSAVE for its supervisor to restart it".into(),
            ],
            Target::Sqlite(p) => vec![
                format!(
                    "write the database beside {} and check it (integrity, row counts)",
                    p.display()
                ),
                "rename it over the old file under an exclusive lock; remove the old WAL".into(),
            ],
            Target::Dir(p) => vec![
                format!("restore beside {} into a temporary directory", p.display()),
                if exists {
                    "swap it into place; remove the old contents (in the safety snapshot)".into()
                } else {
                    "rename it into place".into()
                },
            ],
            Target::File(p) => vec![format!(
                "write {} atomically (temp file, fsync, rename)",
                p.display()
            )],
        }
    }

    pub fn restore(&self, repo: &Repo, entry: &Entry, progress: &dyn Progress) -> Result<Outcome> {
        match self {
            Target::Postgres(c, o) => super::postgres::restore(repo, entry, c, o, progress),
            Target::Mysql(c) => super::mysql::restore(repo, entry, c, progress),
            Target::Mongo(c) => super::mongodb::restore(repo, entry, c, progress),
            Target::Redis(c) => super::redis::restore(repo, entry, c, progress),
            Target::Sqlite(p) => super::sqlite::restore(repo, entry, p, progress),
            Target::Dir(p) => restore_dir(repo, entry, p, progress),
            Target::File(p) => {
                write_file(repo, entry, p, true, progress)?;
                Ok(Outcome {
                    notes: vec![format!("wrote {}", p.display())],
                    mismatches: Vec::new(),
                })
            }
        }
    }
}

fn sibling(target: &Path, tag: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} has no file name", target.display())))?;
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S%f");
    let mut n = std::ffi::OsString::from(".");
    n.push(name);
    n.push(format!(".coffre-{tag}-{stamp}"));
    Ok(target.with_file_name(n))
}

/// Restore a tree beside `target`, then move it into place.
fn restore_dir(
    repo: &Repo,
    entry: &Entry,
    target: &Path,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let target = &crate::pipeline::normalize_root(target)?;
    let fresh = sibling(target, "restore")?;
    let tree = entry.tree.as_ref().expect("tree entry");
    let result = restore_tree(
        repo,
        tree,
        entry.root.as_ref(),
        &fresh,
        &RestoreOptions::default(),
        progress,
    );
    let cleanup = |p: &Path| {
        let _ = std::fs::remove_dir_all(p);
    };
    if let Err(e) = result {
        cleanup(&fresh);
        return Err(e);
    }
    // a single file was backed up: the tree holds just that file
    let source = if entry.root.is_none() {
        let only = std::fs::read_dir(&fresh)
            .map_err(|e| Error::io("reading", &fresh, e))?
            .next()
            .ok_or_else(|| Error::corrupt(format!("entry {} restored nothing", entry.name)))?
            .map_err(|e| Error::io("reading", &fresh, e))?;
        only.path()
    } else {
        fresh.clone()
    };
    let old = sibling(target, "old")?;
    let had_old = std::fs::symlink_metadata(target).is_ok();
    if had_old {
        std::fs::rename(target, &old).map_err(|e| Error::io("moving aside", target, e))?;
    }
    if let Err(e) = std::fs::rename(&source, target) {
        if had_old {
            let _ = std::fs::rename(&old, target);
        }
        cleanup(&fresh);
        return Err(Error::io("moving into place", target, e));
    }
    if let Some(dir) = target.parent() {
        let _ = crate::storage::sync_dir(dir);
    }
    if had_old {
        if old.is_dir() {
            cleanup(&old);
        } else {
            let _ = std::fs::remove_file(&old);
        }
    }
    if entry.root.is_none() {
        cleanup(&fresh);
    }
    Ok(Outcome {
        notes: vec![format!("restored {} into {}", entry.name, target.display())],
        mismatches: Vec::new(),
    })
}

/// A stream entry written and synced to a temp file beside its target;
/// the caller may check it before `persist` renames it into place.
pub struct Beside {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    pub len: u64,
}

/// Write `e` beside `target` (optionally with the mode and owner of the
/// file it will replace), fsync it.
pub fn write_beside(
    repo: &Repo,
    e: &Entry,
    target: &Path,
    keep_mode: bool,
    progress: &dyn Progress,
) -> Result<Beside> {
    let dir = parent_dir(target);
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffre-restore-")
        .tempfile_in(&dir)
        .map_err(|err| Error::io("creating a temp file in", &dir, err))?;
    // chunks are large: they go to the file without an extra buffer
    let len = restore_stream(repo, &e.content(), tmp.as_file_mut(), progress)?;
    if keep_mode {
        keep_mode_and_owner(target, tmp.as_file());
    }
    tmp.as_file()
        .sync_all()
        .map_err(|err| Error::io("writing", target, err))?;
    Ok(Beside {
        tmp,
        target: target.to_path_buf(),
        len,
    })
}

fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Beside {
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Rename into place and sync the directory; returns the directory.
    pub fn persist(self) -> Result<PathBuf> {
        let dir = parent_dir(&self.target);
        self.tmp
            .persist(&self.target)
            .map_err(|err| Error::io("renaming into", &self.target, err.error))?;
        crate::storage::sync_dir(&dir).map_err(|err| Error::io("syncing", &dir, err))?;
        Ok(dir)
    }
}

/// Write a stream entry to a file: a temp file beside it, fsync, rename.
pub fn write_file(
    repo: &Repo,
    e: &Entry,
    target: &Path,
    keep_mode: bool,
    progress: &dyn Progress,
) -> Result<u64> {
    if target.is_dir() {
        return Err(Error::usage(format!(
            "{} is a directory; a stream restores to a file",
            target.display()
        )));
    }
    let b = write_beside(repo, e, target, keep_mode, progress)?;
    let len = b.len;
    b.persist()?;
    Ok(len)
}

/// Give the file about to replace `old` the old one's mode and owner (a
/// restored database keeps the permissions its server or app expects).
pub fn keep_mode_and_owner(old: &Path, new: &std::fs::File) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(md) = std::fs::metadata(old) {
        let _ = new.set_permissions(md.permissions());
        let _ = std::os::unix::fs::fchown(new, Some(md.uid()), Some(md.gid()));
    }
}
