//! Restore drills: restore an entry somewhere disposable (a scratch
//! database on a given server, a throwaway PostgreSQL cluster or Redis
//! server, a temp file or directory), check it against what was recorded at
//! backup, run an optional query, clean up, and report pass or fail.

use std::time::Instant;

use serde::Serialize;

use super::postgres::{Outcome, PgConn, PgRestore};
use super::target::entry_kind;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::{Entry, EntryKind};
use crate::pipeline::Progress;
use crate::plan::{Kind, Source};
use crate::repo::Repo;

#[derive(Debug, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub ms: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The step failed because repository data is damaged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub damaged: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub steps: Vec<Step>,
    pub mismatches: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_output: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.steps.iter().all(|s| s.ok)
    }

    /// Time `f` as a step; a failure is recorded, not returned, so that the
    /// cleanup steps after it still run.
    fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Option<T> {
        let t0 = Instant::now();
        let r = f();
        let ms = t0.elapsed().as_millis() as u64;
        let (ok, detail, damaged, v) = match r {
            Ok(v) => (true, String::new(), false, Some(v)),
            Err(e) => (
                false,
                e.to_string(),
                e.kind() == crate::ErrorKind::Corrupt,
                None,
            ),
        };
        self.steps.push(Step {
            name: name.to_string(),
            ok,
            ms,
            detail,
            damaged,
        });
        v
    }

    fn outcome(&mut self, o: Option<Outcome>) -> bool {
        match o {
            Some(o) => {
                self.mismatches.extend(o.mismatches);
                true
            }
            None => false,
        }
    }
}

pub struct DrillOptions<'a> {
    /// A server for a scratch database (postgres/mysql/mongodb).
    pub server: Option<&'a str>,
    pub password: Option<super::secret::Secret>,
    pub query: Option<&'a str>,
    pub source: Option<&'a Source>,
}

/// A URL naming another database on the same server.
fn with_database(raw: &str, db: &str) -> Result<String> {
    let (mut u, _) = super::secret::split_url_password(raw)?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

pub fn run(
    repo: &Repo,
    entry: &Entry,
    o: &DrillOptions<'_>,
    progress: &dyn Progress,
) -> Result<Report> {
    let mut r = Report::default();
    let bin_dir = o.source.and_then(|s| s.bin_dir.as_deref());
    match entry_kind(entry) {
        Kind::Postgres if entry.name.ends_with(".globals") => {
            return Err(Error::usage("drill the database entry, not its globals"));
        }
        Kind::Postgres => {
            let scratch_db = format!("coffre_drill_{}", super::unique_stamp());
            let cluster;
            let conn = match o.server {
                Some(s) => {
                    PgConn::new(&with_database(s, &scratch_db)?, o.password.clone(), bin_dir)?
                }
                None => {
                    cluster = r.step("start a throwaway PostgreSQL cluster", || {
                        super::pgcluster::ScratchCluster::start(bin_dir)
                    });
                    let Some(c) = &cluster else { return Ok(r) };
                    PgConn::new(&c.url(&scratch_db), None, Some(c.bin()))?
                }
            };
            let opts = PgRestore {
                jobs: 1,
                // a scratch server lacks the production roles
                no_owner: true,
                ..Default::default()
            };
            let out = r.step(
                &format!("restore into scratch database {scratch_db}"),
                || super::postgres::restore(repo, entry, &conn, &opts, progress),
            );
            if r.outcome(out)
                && let Some(q) = o.query
            {
                r.query_output = r.step("run the check query", || {
                    conn.query(&scratch_db, q).map(|rows| {
                        rows.iter()
                            .map(|row| row.join("\t"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                });
            }
            if o.server.is_some() {
                r.step("drop the scratch database", || {
                    conn.query(
                        "postgres",
                        &format!(
                            "DROP DATABASE IF EXISTS {};",
                            super::postgres::ident(&scratch_db)
                        ),
                    )
                });
            }
        }
        Kind::Mysql | Kind::Mariadb => {
            let server = o.server.ok_or_else(|| {
                Error::usage("a MySQL drill needs a server for its scratch database")
                    .with_hint("pass --to mysql://user@host/ (the database part is ignored)")
            })?;
            let scratch_db = format!("coffre_drill_{}", super::unique_stamp());
            let conn = super::mysql::MyConn::new(
                &with_database(server, &scratch_db)?,
                o.password.clone(),
                bin_dir,
                entry_kind(entry) == Kind::Mariadb,
            )?;
            let out = r.step(
                &format!("restore into scratch database {scratch_db}"),
                || super::mysql::restore(repo, entry, &conn, progress),
            );
            if r.outcome(out)
                && let Some(q) = o.query
            {
                r.query_output = r.step("run the check query", || {
                    conn.query(&scratch_db, q).map(|rows| {
                        rows.iter()
                            .map(|row| row.join("\t"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                });
            }
            r.step("drop the scratch database", || {
                conn.query("", &format!("DROP DATABASE IF EXISTS `{scratch_db}`"))
            });
        }
        Kind::Sqlite => {
            let dir = super::scratch_dir("coffre-drill-")?;
            let path = dir.path().join("drill.sqlite");
            let out = r.step("restore to a scratch file and check integrity", || {
                super::sqlite::restore(repo, entry, &path, progress)
            });
            if r.outcome(out)
                && let Some(q) = o.query
            {
                r.query_output = r.step("run the check query", || sqlite_query(&path, q));
            }
        }
        Kind::Redis => {
            let dir = super::scratch_dir("coffre-drill-")?;
            let rdb = dir.path().join("dump.rdb");
            let written = r.step("restore the RDB to a scratch file", || {
                super::target::write_file(repo, entry, &rdb, false, progress)
            });
            if written.is_some() {
                let server = r.step("start a throwaway redis-server on it", || {
                    ScratchRedis::start(dir.path(), bin_dir)
                });
                if let Some(server) = server {
                    let conn = super::redis::RedisConn::new(&server.url(), None, bin_dir)?;
                    let differences = r.step("count keys", || conn.count_differences(&entry.meta));
                    r.mismatches.extend(differences.unwrap_or_default());
                    if let Some(q) = o.query {
                        let args: Vec<&str> = q.split_whitespace().collect();
                        r.query_output = r.step("run the check command", || conn.command(&args));
                    }
                }
            }
        }
        Kind::Mongodb => {
            let server = o.server.ok_or_else(|| {
                Error::usage("a MongoDB drill needs a scratch server").with_hint(
                    "pass --to mongodb://scratch-host/ (its collections are dropped and replaced)",
                )
            })?;
            let conn = super::mongodb::MongoConn::new(server, o.password.clone(), bin_dir)?;
            let out = r.step("mongorestore into the scratch server", || {
                super::mongodb::restore(repo, entry, &conn, progress)
            });
            r.outcome(out);
        }
        Kind::Files | Kind::Command => {
            if o.query.is_some() {
                return Err(Error::usage(format!(
                    "--query needs a database entry; {} is not one",
                    entry.name
                )));
            }
            match entry.kind {
                EntryKind::Tree => {
                    let dir = super::scratch_dir("coffre-drill-")?;
                    let target = dir.path().join("restored");
                    let n = r.step("restore to a scratch directory", || {
                        crate::pipeline::restore_tree(
                            repo,
                            entry.tree.as_ref().expect("tree entry"),
                            entry.root.as_ref(),
                            &target,
                            &Default::default(),
                            progress,
                        )
                    });
                    if let Some(n) = n
                        && n != entry.size
                    {
                        r.mismatches.push(format!(
                            "{n} bytes restored, {} recorded at backup",
                            entry.size
                        ));
                    }
                }
                EntryKind::Stream => {
                    let n = r.step("read back and verify every chunk", || {
                        crate::pipeline::verify_entry(repo, entry, progress)
                    });
                    if let Some(n) = n
                        && n != entry.size
                    {
                        r.mismatches.push(format!(
                            "{n} bytes read back, {} recorded at backup",
                            entry.size
                        ));
                    }
                }
            }
        }
    }
    Ok(r)
}

fn sqlite_query(path: &std::path::Path, q: &str) -> Result<String> {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| {
            Error::new(
                ErrorKind::CommandFailed,
                format!("opening the scratch copy: {e}"),
            )
        })?;
    let mut stmt = c
        .prepare(q)
        .map_err(|e| Error::new(ErrorKind::CommandFailed, format!("the query failed: {e}")))?;
    let cols = stmt.column_count();
    let rows = stmt
        .query_map([], |row| {
            (0..cols)
                .map(|i| {
                    row.get_ref(i).map(|v| match v {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(f) => f.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(|v| v.join("\t"))
        })
        .and_then(|r| r.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::new(ErrorKind::CommandFailed, format!("the query failed: {e}")))?;
    Ok(rows.join("\n"))
}

/// redis-server on a free loopback port, loading `dir/dump.rdb`; killed on drop.
struct ScratchRedis {
    child: std::process::Child,
    port: u16,
}

impl ScratchRedis {
    fn start(dir: &std::path::Path, bin_dir: Option<&std::path::Path>) -> Result<ScratchRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::other(format!("finding a free port: {e}")))?
            .port();
        let mut cmd = super::child::tool(bin_dir, "redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(dir)
            .args([
                "--dbfilename",
                "dump.rdb",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn().map_err(|e| {
            Error::new(
                ErrorKind::CommandFailed,
                format!("cannot run redis-server: {e}"),
            )
            .with_hint("install redis-server, or set bin-dir in the plan")
        })?;
        let s = ScratchRedis { child, port };
        let conn = super::redis::RedisConn::new(&s.url(), None, bin_dir)?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // accepting connections; loading may still be under way,
                // and PING answers LOADING until it is done
                if conn.command(&["PING"]).is_ok_and(|r| r.contains("PONG")) {
                    return Ok(s);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(Error::new(
            ErrorKind::CommandFailed,
            "the throwaway redis-server did not start (is the RDB valid?)",
        ))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for ScratchRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
