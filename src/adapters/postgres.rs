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
        let database = super::url_database(&url);
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
        // a password in the URL itself is taken by `new`
        let pw = source_password(src)?;
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
        // a statement without its ';' would sit in psql's buffer
        let sql = sql.trim_end();
        let end = if sql.ends_with(';') || sql.contains("\\g") {
            ""
        } else {
            ";"
        };
        let sent = write!(stdin, "{sql}{end}\n\\echo {SENTINEL}\n").and_then(|_| stdin.flush());
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
    Ok(super::counts_from_rows(psql.query(ROW_COUNTS)?))
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
            let scratch = super::scratch_dir("coffre-pgdump-")?;
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

/// `"name"` with embedded quotes doubled.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// How to restore into PostgreSQL.
#[derive(Clone, Debug, Default)]
pub struct PgRestore {
    /// Drop and recreate the database in place instead of restoring beside it.
    pub replace: bool,
    /// pg_restore --jobs (custom and directory formats).
    pub jobs: usize,
    /// Only these tables (pg_restore -t), into the existing database.
    pub tables: Vec<String>,
    /// pg_restore --no-owner --no-privileges (a cluster without the roles).
    pub no_owner: bool,
}

/// What a restore did, for the report.
#[derive(Debug, Default)]
pub struct Outcome {
    pub notes: Vec<String>,
    /// Tables whose row count differs from the one recorded at backup.
    pub mismatches: Vec<String>,
}

const MAINTENANCE_DB: &str = "postgres";

impl PgConn {
    pub fn database_exists(&self, db: &str) -> Result<bool> {
        let rows = self.query(
            MAINTENANCE_DB,
            &format!("SELECT 1 FROM pg_database WHERE datname = {};", literal(db)),
        )?;
        Ok(!rows.is_empty())
    }

    /// CREATE DATABASE with the encoding, locale and owner of `like` when it exists.
    fn create_database(&self, db: &str, like: &str) -> Result<()> {
        let settings = self.query(
            MAINTENANCE_DB,
            &format!(
                "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, r.rolname \
                 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = {};",
                literal(like)
            ),
        )?;
        let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", ident(db));
        if let Some(s) = settings.first().filter(|s| s.len() == 4) {
            sql += &format!(
                " ENCODING {} LC_COLLATE {} LC_CTYPE {} OWNER {}",
                literal(&s[0]),
                literal(&s[1]),
                literal(&s[2]),
                ident(&s[3])
            );
        }
        self.query(MAINTENANCE_DB, &(sql + ";"))?;
        Ok(())
    }

    /// CREATE ROLE (no login) unless it exists: for restores into a cluster
    /// that lacks the dump's roles.
    fn create_role_if_missing(&self, role: &str) -> Result<()> {
        self.query(
            MAINTENANCE_DB,
            &format!(
                "DO $coffre$ BEGIN CREATE ROLE {}; \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $coffre$;",
                ident(role)
            ),
        )?;
        Ok(())
    }

    fn terminate_sessions(&self, db: &str) -> Result<()> {
        self.query(
            MAINTENANCE_DB,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = {} AND pid <> pg_backend_pid();",
                literal(db)
            ),
        )?;
        Ok(())
    }
}

/// The steps a restore of `entry` into `conn` will take, for the plan shown
/// before anything happens.
pub fn restore_steps(conn: &PgConn, exists: bool, opts: &PgRestore, format: &str) -> Vec<String> {
    let db = &conn.database;
    let tool = if format == "plain" {
        "psql"
    } else {
        "pg_restore"
    };
    if !opts.tables.is_empty() {
        return vec![format!(
            "{tool} --clean --if-exists of table(s) {} (with their keys, indexes, triggers \
             and sequences) into {db}, in one transaction",
            opts.tables.join(", ")
        )];
    }
    let mut v = Vec::new();
    if opts.replace || !exists {
        if exists {
            v.push(format!("terminate sessions on {db}, DROP DATABASE {db}"));
        }
        v.push(format!("CREATE DATABASE {db} and {tool} into it"));
        v.push("compare row counts with the backup's; ANALYZE".into());
    } else {
        v.push(format!(
            "CREATE DATABASE {db}_coffre_<time> and {tool} into it"
        ));
        v.push("compare row counts with the backup's; ANALYZE".into());
        v.push(format!(
            "swap names: {db} → {db}_coffre_old_<time> (kept, connections disabled), new → {db}"
        ));
    }
    v
}

/// Restore a postgres entry into the database `conn` names.
pub fn restore(
    repo: &crate::repo::Repo,
    entry: &crate::format::snapshot::Entry,
    conn: &PgConn,
    opts: &PgRestore,
    progress: &dyn crate::pipeline::Progress,
) -> Result<Outcome> {
    let db = conn.database.clone();
    let format = entry
        .meta
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or("custom")
        .to_string();
    let exists = conn.database_exists(&db)?;
    let mut out = Outcome::default();
    if !opts.tables.is_empty() {
        if format == "plain" {
            return Err(
                Error::usage("a plain-format dump cannot restore single tables")
                    .with_hint("restore the whole entry, or back up with format = \"custom\""),
            );
        }
        if !exists {
            return Err(Error::not_found(format!("database {db} does not exist"))
                .with_hint("single tables restore into an existing database"));
        }
        // the table with its keys, indexes, triggers and sequences (see pgtoc)
        let list = table_toc(repo, entry, conn, &format, &opts.tables)?;
        let scratch = super::scratch_dir("coffre-pglist-")?;
        let list_file = scratch.path().join("tables.list");
        std::fs::write(&list_file, list).map_err(|e| Error::io("writing", &list_file, e))?;
        // one transaction: a drop that fails (a view still uses the table)
        // must not leave the table without the keys dropped before it;
        // pg_restore cannot combine that with --jobs, which buys little here
        let extra = vec![
            "--clean".to_string(),
            "--if-exists".to_string(),
            "--single-transaction".to_string(),
            format!("--use-list={}", list_file.display()),
        ];
        let how = Load {
            jobs: 1,
            extra,
            roles_missing: opts.no_owner,
        };
        load(repo, entry, conn, &db, &format, &how, progress)?;
        out.notes.push(format!(
            "restored table(s) {} into {db}",
            opts.tables.join(", ")
        ));
        return Ok(out);
    }
    let stamp = super::unique_stamp();
    let short = |base: &str, suffix: &str| {
        // identifiers are at most 63 bytes
        let mut b = base.to_string();
        while b.len() + suffix.len() > 63 {
            b.pop();
        }
        format!("{b}{suffix}")
    };
    let beside = exists && !opts.replace;
    let work_db = if beside {
        short(&db, &format!("_coffre_{stamp}"))
    } else {
        db.clone()
    };
    if exists && opts.replace {
        conn.terminate_sessions(&db)?;
        conn.query(MAINTENANCE_DB, &format!("DROP DATABASE {};", ident(&db)))?;
        out.notes.push(format!("dropped database {db}"));
    }
    conn.create_database(&work_db, &db)?;
    let how = Load {
        jobs: opts.jobs,
        extra: Vec::new(),
        roles_missing: opts.no_owner,
    };
    let loaded = load(repo, entry, conn, &work_db, &format, &how, progress)
        .and_then(|_| compare_counts(conn, &work_db, &entry.meta));
    match loaded {
        Ok(m) => out.mismatches = m,
        Err(e) => {
            if beside {
                // the old database was never touched; leave no half-restored twin
                let _ = conn.query(
                    MAINTENANCE_DB,
                    &format!("DROP DATABASE IF EXISTS {};", ident(&work_db)),
                );
                return Err(e.context(format!("restoring beside {db} (left unchanged)")));
            }
            return Err(e);
        }
    }
    conn.query(&work_db, "ANALYZE;")?;
    if beside {
        let old = short(&db, &format!("_coffre_old_{stamp}"));
        conn.query(
            MAINTENANCE_DB,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false;", ident(&db)),
        )?;
        let swapped = conn.terminate_sessions(&db).and_then(|_| {
            conn.query(
                MAINTENANCE_DB,
                &format!(
                    "BEGIN; ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {}; COMMIT;",
                    ident(&db),
                    ident(&old),
                    ident(&work_db),
                    ident(&db)
                ),
            )
        });
        if let Err(e) = swapped {
            // the renames are one transaction: nothing was renamed; reopen
            // the old database and remove the restored twin
            let _ = conn.query(
                MAINTENANCE_DB,
                &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true;", ident(&db)),
            );
            let _ = conn.query(
                MAINTENANCE_DB,
                &format!("DROP DATABASE IF EXISTS {};", ident(&work_db)),
            );
            return Err(e.context(format!(
                "swapping the restored database in for {db} (left unchanged)"
            )));
        }
        out.notes.push(format!(
            "the previous database is kept as {old} (connections disabled); drop it with \
             DROP DATABASE {} once the restore is confirmed",
            ident(&old)
        ));
    }
    out.notes.push(format!("restored into {db}; ANALYZE done"));
    Ok(out)
}

/// The `--use-list` that restores `tables` of a custom or directory dump.
fn table_toc(
    repo: &crate::repo::Repo,
    entry: &crate::format::snapshot::Entry,
    conn: &PgConn,
    format: &str,
    tables: &[String],
) -> Result<String> {
    use crate::format::snapshot::EntryKind;
    let mut c = conn.tool("pg_restore");
    c.args(["--list", "--verbose"]);
    let list = match entry.kind {
        // reads the archive's table of contents and stops
        EntryKind::Stream => child::feed_for_output(c, "listing the dump failed", |w| {
            crate::pipeline::restore_stream(repo, &entry.content(), w, &crate::pipeline::NoProgress)
        })?,
        EntryKind::Tree => {
            // a directory dump's table of contents is its toc.dat
            let toc = crate::pipeline::narrow_entry(repo, entry, Path::new("toc.dat"))?;
            let scratch = super::scratch_dir("coffre-pgtoc-")?;
            let dir = scratch.path().join("dump");
            std::fs::create_dir(&dir).map_err(|e| Error::io("creating", &dir, e))?;
            let file = dir.join("toc.dat");
            let mut f =
                std::fs::File::create(&file).map_err(|e| Error::io("creating", &file, e))?;
            crate::pipeline::restore_stream(
                repo,
                &toc.content(),
                &mut f,
                &crate::pipeline::NoProgress,
            )?;
            drop(f);
            c.arg(format!("--format={format}")).arg(&dir);
            child::output(c, "listing the dump failed")?
        }
    };
    super::pgtoc::table_list(&list, tables)
}

/// How `load` runs the restore tool.
struct Load {
    /// pg_restore --jobs (1 streams the archive).
    jobs: usize,
    /// More pg_restore arguments.
    extra: Vec<String>,
    /// The cluster lacks the dump's roles (a throwaway drill cluster):
    /// pg_restore skips owners and grants; for psql they are created.
    roles_missing: bool,
}

/// Feed the entry to pg_restore or psql connected to `db`.
fn load(
    repo: &crate::repo::Repo,
    entry: &crate::format::snapshot::Entry,
    conn: &PgConn,
    db: &str,
    format: &str,
    how: &Load,
    progress: &dyn crate::pipeline::Progress,
) -> Result<()> {
    use crate::format::snapshot::EntryKind;
    let url = conn.url_for(db);
    let mut extra = how.extra.clone();
    if how.roles_missing {
        extra.extend(["--no-owner".to_string(), "--no-privileges".to_string()]);
    }
    let jobs = how.jobs;
    match (entry.kind, format) {
        (EntryKind::Stream, "plain") => {
            let mut c = conn.tool("psql");
            c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
                .arg(format!("--dbname={url}"));
            child::feed(c, "the restore failed", |w| {
                if !how.roles_missing {
                    return crate::pipeline::restore_stream(repo, &entry.content(), w, progress);
                }
                let mut create = |role: &str| conn.create_role_if_missing(role);
                let mut roles = super::pgroles::RoleCreator::new(w, &mut create);
                let n =
                    crate::pipeline::restore_stream(repo, &entry.content(), &mut roles, progress)?;
                roles
                    .finish()
                    .map_err(|e| Error::other(format!("feeding psql: {e}")))?;
                Ok(n)
            })?;
        }
        (EntryKind::Stream, _) if jobs > 1 => {
            // --jobs needs a seekable archive: materialise it first
            let scratch = super::scratch_dir("coffre-pgrestore-")?;
            let file = scratch.path().join("dump.custom");
            let mut f =
                std::fs::File::create(&file).map_err(|e| Error::io("creating", &file, e))?;
            crate::pipeline::restore_stream(repo, &entry.content(), &mut f, progress)?;
            drop(f);
            let mut c = conn.tool("pg_restore");
            c.arg("--exit-on-error")
                .arg(format!("--jobs={jobs}"))
                .arg(format!("--dbname={url}"))
                .args(&extra)
                .arg(&file);
            child::output(c, "the restore failed")?;
        }
        (EntryKind::Stream, _) => {
            let mut c = conn.tool("pg_restore");
            c.arg("--exit-on-error")
                .arg(format!("--dbname={url}"))
                .args(&extra);
            // with a list, pg_restore stops reading once it has its tables
            let partial = extra.iter().any(|a| a.starts_with("--use-list="));
            child::feed_with(c, "the restore failed", partial, |w| {
                crate::pipeline::restore_stream(repo, &entry.content(), w, progress)
            })?;
        }
        (EntryKind::Tree, _) => {
            let scratch = super::scratch_dir("coffre-pgrestore-")?;
            let dir = scratch.path().join("dump");
            crate::pipeline::restore_tree(
                repo,
                entry.tree.as_ref().expect("tree entry"),
                entry.root.as_ref(),
                &dir,
                &Default::default(),
                progress,
            )?;
            let mut c = conn.tool("pg_restore");
            c.args(["--exit-on-error", "--format=directory"])
                .arg(format!("--jobs={}", jobs.max(1)))
                .arg(format!("--dbname={url}"))
                .args(&extra)
                .arg(&dir);
            child::output(c, "the restore failed")?;
        }
    }
    Ok(())
}

/// Differences between the row counts recorded at backup and those of `db`.
fn compare_counts(conn: &PgConn, db: &str, meta: &Map<String, Value>) -> Result<Vec<String>> {
    let Some(recorded) = recorded_counts(meta) else {
        return Ok(Vec::new());
    };
    let mut psql = conn.psql(db)?;
    let now = row_counts(&mut psql)?;
    psql.close()?;
    Ok(count_differences(&recorded, &now))
}

/// "table: N at backup, M now" for every table that differs or is missing.
pub fn count_differences(
    recorded: &BTreeMap<String, u64>,
    now: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (t, n) in recorded {
        match now.get(t) {
            Some(m) if m == n => {}
            Some(m) => out.push(format!("{t}: {n} rows at backup, {m} restored")),
            None => out.push(format!("{t}: {n} rows at backup, table missing")),
        }
    }
    for (t, m) in now {
        if !recorded.contains_key(t) {
            out.push(format!("{t}: not in the backup, {m} rows"));
        }
    }
    out
}
