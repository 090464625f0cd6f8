//! PostgreSQL: `pg_dump` of one database inside an exported snapshot (so
//! that row counts, WAL position and consistency time describe exactly the
//! dumped data), optional `pg_dumpall --globals-only`; restore with
//! `pg_restore`/`psql` beside the old database and a swap of names, or in
//! place with `--replace`. The password reaches the tools through a PGPASSFILE.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Map, Value, json};

use super::child::{self, Running};
use super::secret::{Secret, SecretDir, source_password, split_url_password};
use super::{Warn, base_meta, require_trailer, stream_command};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::BackupSession;
use crate::plan::{PgFormat, Source};

/// How to reach one server: a URL without password, and a PGPASSFILE.
pub struct PgConn {
    url: url::Url,
    pub database: String,
    bin_dir: Option<PathBuf>,
    pgpass: Option<PathBuf>,
    _secrets: SecretDir,
}

impl PgConn {
    pub fn new(raw_url: &str, password: Option<Secret>, bin_dir: Option<&Path>) -> Result<PgConn> {
        if !(raw_url.starts_with("postgresql://") || raw_url.starts_with("postgres://")) {
            return Err(Error::usage(format!(
                "{} is not a PostgreSQL URL",
                super::secret::redact_url_str(raw_url)
            ))
            .with_hint("e.g. postgresql://user@host:5432/dbname"));
        }
        let (url, from_url) = split_url_password(raw_url)?;
        let password = password.or(from_url);
        let database = percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        if database.is_empty() {
            return Err(Error::usage("the PostgreSQL URL names no database")
                .with_hint("e.g. postgresql://user@host:5432/dbname"));
        }
        let secrets = SecretDir::new()?;
        let pgpass = match &password {
            Some(pw) => {
                // .pgpass: host:port:db:user:password, with ':' and '\' escaped
                let escaped = pw.replace('\\', "\\\\").replace(':', "\\:");
                Some(secrets.write("pgpass", &format!("*:*:*:*:{escaped}\n"))?)
            }
            None => None,
        };
        Ok(PgConn {
            url,
            database,
            bin_dir: bin_dir.map(Path::to_path_buf),
            pgpass,
            _secrets: secrets,
        })
    }

    pub fn for_source(src: &Source) -> Result<PgConn> {
        let raw = src.url.as_deref().expect("validated: postgres has a url");
        let (_, from_url) = split_url_password(raw)?;
        let pw = source_password(src, from_url)?;
        PgConn::new(raw, pw, src.bin_dir.as_deref())
    }

    /// The URL (no password) with another database.
    pub fn url_for(&self, database: &str) -> String {
        let mut u = self.url.clone();
        let enc =
            percent_encoding::utf8_percent_encode(database, percent_encoding::NON_ALPHANUMERIC);
        u.set_path(&format!("/{enc}"));
        u.to_string()
    }

    /// The URL as given, without password (for messages and records).
    pub fn display(&self) -> String {
        self.url.to_string()
    }

    /// A tool with the password file in its environment and never a prompt.
    pub fn tool(&self, name: &str) -> Command {
        let mut c = child::tool(self.bin_dir.as_deref(), name);
        if let Some(p) = &self.pgpass {
            c.env("PGPASSFILE", p);
        }
        c.arg("--no-password");
        c
    }

    pub fn psql(&self, database: &str) -> Result<Psql> {
        let mut c = self.tool("psql");
        c.args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"]);
        c.arg(format!("--dbname={}", self.url_for(database)));
        Psql::spawn(c)
    }

    /// Run statements in `database` and return the rows.
    pub fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        let mut p = self.psql(database)?;
        let rows = p.query(sql)?;
        p.close()?;
        Ok(rows)
    }
}

/// A psql process driven through its stdin: statements in, rows out, a
/// sentinel line marking the end of each batch.
pub struct Psql {
    run: Option<Running>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

const SENTINEL: &str = "__coffre_end_of_batch__";

impl Psql {
    fn spawn(cmd: Command) -> Result<Psql> {
        let mut run = Running::spawn(cmd, Stdio::piped())?;
        let stdin = run.child.stdin.take();
        let stdout = BufReader::new(run.stdout());
        Ok(Psql {
            run: Some(run),
            stdin,
            stdout,
        })
    }

    /// Send `sql` (terminated statements or `\gexec`) and read the rows it prints.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<String>>> {
        let stdin = self.stdin.as_mut().expect("open");
        let sent = write!(stdin, "{sql}\n\\echo {SENTINEL}\n").and_then(|_| stdin.flush());
        let mut rows = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap_or(0);
            if n == 0 || sent.is_err() {
                return Err(self.failure());
            }
            let l = line.trim_end_matches('\n');
            if l == SENTINEL {
                return Ok(rows);
            }
            rows.push(l.split('\t').map(str::to_string).collect());
        }
    }

    fn failure(&mut self) -> Error {
        drop(self.stdin.take());
        match self.run.take().map(|r| r.finish("the query failed")) {
            Some(Err(e)) => e,
            _ => Error::new(ErrorKind::CommandFailed, "psql stopped unexpectedly"),
        }
    }

    pub fn close(mut self) -> Result<()> {
        drop(self.stdin.take());
        if let Some(r) = self.run.take() {
            r.finish("the session failed")?;
        }
        Ok(())
    }
}

impl Drop for Psql {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut r) = self.run.take() {
            r.kill();
            let _ = r.wait();
        }
    }
}

/// psql `\gexec` program printing `schema.table<TAB>rows` for every table.
const ROW_COUNTS: &str = r"SELECT format('SELECT %L, count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
   AND n.nspname NOT LIKE 'pg\_%'
 ORDER BY n.nspname, c.relname \gexec";

pub fn row_counts(psql: &mut Psql) -> Result<BTreeMap<String, u64>> {
    let rows = psql.query(ROW_COUNTS)?;
    Ok(rows
        .into_iter()
        .filter(|r| r.len() == 2)
        .filter_map(|r| Some((r[0].clone(), r[1].parse().ok()?)))
        .collect())
}

pub fn backup(session: &mut BackupSession<'_>, src: &Source, warn: &dyn Warn) -> Result<()> {
    let conn = PgConn::for_source(src)?;
    let db = conn.database.clone();
    // one read-only transaction whose snapshot pg_dump imports: the counts,
    // the LSN and the time below describe exactly what is dumped
    let mut psql = conn.psql(&db)?;
    psql.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;")?;
    let info = psql.query(
        "SELECT pg_export_snapshot(), \
         CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, \
         to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         current_setting('server_version');",
    )?;
    let info = info
        .into_iter()
        .next()
        .filter(|r| r.len() == 4)
        .ok_or_else(|| Error::other("unexpected answer from psql to the snapshot query"))?;
    let counts = row_counts(&mut psql)?;

    let mut meta = base_meta(src);
    meta.insert("database".into(), json!(db));
    meta.insert("url".into(), json!(conn.display()));
    meta.insert("format".into(), json!(src.format.as_str()));
    meta.insert("server_version".into(), json!(info[3]));
    meta.insert("wal_lsn".into(), json!(info[1]));
    meta.insert("consistent_at".into(), json!(info[2]));
    if let Some(v) = child::version(child::tool(src.bin_dir.as_deref(), "pg_dump")) {
        meta.insert("tool_version".into(), json!(v));
    }
    meta.insert("row_counts".into(), json!(counts));

    let mut cmd = conn.tool("pg_dump");
    cmd.arg(format!("--dbname={}", conn.url_for(&db)))
        .arg(format!("--snapshot={}", info[0]));
    let record = |cmd: &Command| {
        let mut v = vec![child::program_name(cmd)];
        v.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
        Some(v)
    };
    match src.format {
        PgFormat::Custom | PgFormat::Plain => {
            cmd.arg(format!("--format={}", src.format.as_str()));
            if src.format == PgFormat::Custom {
                cmd.arg("--compress=0");
            }
            let argv = record(&cmd);
            let streamed = stream_command(session, &src.name, cmd, argv, meta, warn)?;
            if src.format == PgFormat::Plain {
                require_trailer(
                    session,
                    &src.name,
                    &streamed,
                    b"-- PostgreSQL database dump complete",
                    "pg_dump",
                )?;
            } else if !streamed.head.starts_with(b"PGDMP") {
                session.discard(&src.name);
                return Err(Error::new(
                    ErrorKind::CommandFailed,
                    "pg_dump did not write a custom-format archive; no snapshot was made",
                ));
            }
        }
        PgFormat::Directory => {
            let scratch = tempfile::Builder::new()
                .prefix("coffre-pgdump-")
                .tempdir()
                .map_err(|e| Error::io("creating a directory in", &std::env::temp_dir(), e))?;
            let out = scratch.path().join("dump");
            cmd.args(["--format=directory", "--compress=0"])
                .arg(format!("--file={}", out.display()));
            let argv = record(&cmd);
            child::output(cmd, "no snapshot was made")?;
            session.tree(&src.name, &out, None)?;
            let e = session.entry_mut(&src.name).expect("just added");
            e.meta = meta;
            e.command = argv;
        }
    }
    psql.query("COMMIT;")?;
    psql.close()?;

    if src.globals {
        let name = format!("{}.globals", src.name);
        let mut cmd = conn.tool("pg_dumpall");
        cmd.arg("--globals-only")
            .arg(format!("--dbname={}", conn.url_for(&db)));
        let mut meta = base_meta(src);
        meta.insert("part".into(), json!("globals"));
        meta.insert("url".into(), json!(conn.display()));
        meta.insert("format".into(), json!("plain"));
        let argv = record(&cmd);
        let streamed = stream_command(session, &name, cmd, argv, meta, warn)?;
        require_trailer(
            session,
            &name,
            &streamed,
            b"-- PostgreSQL database cluster dump complete",
            "pg_dumpall",
        )?;
    }
    Ok(())
}

/// The row counts recorded at backup (entry meta `row_counts`).
pub fn recorded_counts(meta: &Map<String, Value>) -> Option<BTreeMap<String, u64>> {
    serde_json::from_value(meta.get("row_counts")?.clone()).ok()
}
