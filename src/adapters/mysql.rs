//! MySQL and MariaDB: `mysqldump`/`mariadb-dump` in one consistent
//! transaction, with routines, triggers and events, hex blobs and no dump
//! date (so that unchanged data dumps to identical bytes). Credentials go
//! through an option file (`--defaults-extra-file`, 0600).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::child;
use super::secret::{Secret, SecretDir, source_password, split_url_password};
use super::{Warn, base_meta, require_trailer, stream_command};
use crate::error::{Error, Result};
use crate::pipeline::BackupSession;
use crate::plan::{Kind, Source};

pub struct MyConn {
    pub database: String,
    display: String,
    bin_dir: Option<PathBuf>,
    options: PathBuf,
    mariadb: bool,
    _secrets: SecretDir,
}

/// A value for a MySQL option file: double-quoted, with `\` and `"` escaped.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

impl MyConn {
    pub fn new(
        raw_url: &str,
        password: Option<Secret>,
        bin_dir: Option<&Path>,
        mariadb: bool,
    ) -> Result<MyConn> {
        let (url, from_url) = split_url_password(raw_url)?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(Error::usage(format!("{url} is not a MySQL URL"))
                .with_hint("e.g. mysql://user@host:3306/dbname or mysql://root@localhost/db?socket=/run/mysqld/mysqld.sock"));
        }
        let password = password.or(from_url);
        let database = super::url_database(&url);
        if database.is_empty() {
            return Err(Error::usage("the MySQL URL names no database")
                .with_hint("e.g. mysql://user@host:3306/dbname"));
        }
        let mut opts = String::from("[client]\n");
        if !url.username().is_empty() {
            let user = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy();
            opts += &format!("user={}\n", quoted(&user));
        }
        if let Some(pw) = &password {
            opts += &format!("password={}\n", quoted(pw));
        }
        if let Some(h) = url.host_str().filter(|h| !h.is_empty()) {
            opts += &format!("host={}\n", quoted(h));
        }
        if let Some(p) = url.port() {
            opts += &format!("port={p}\n");
        }
        for (k, v) in url.query_pairs() {
            match &*k {
                "socket" => opts += &format!("socket={}\n", quoted(&v)),
                other => {
                    return Err(
                        Error::usage(format!("unknown MySQL URL parameter {other:?}"))
                            .with_hint("only ?socket=PATH is understood"),
                    );
                }
            }
        }
        let secrets = SecretDir::new()?;
        let options = secrets.write("my.cnf", &opts)?;
        drop(zeroize::Zeroizing::new(opts));
        Ok(MyConn {
            database,
            display: url.to_string(),
            bin_dir: bin_dir.map(Path::to_path_buf),
            options,
            mariadb,
            _secrets: secrets,
        })
    }

    pub fn for_source(src: &Source) -> Result<MyConn> {
        let raw = src.url.as_deref().expect("validated: mysql has a url");
        // a password in the URL itself is taken by `new`
        let pw = source_password(src)?;
        MyConn::new(raw, pw, src.bin_dir.as_deref(), src.kind == Kind::Mariadb)
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// `--defaults-extra-file` must be the first argument.
    fn tool(&self, names: &[&str]) -> Command {
        let name = child::first_tool(self.bin_dir.as_deref(), names).unwrap_or(names[0]);
        let mut c = child::tool(self.bin_dir.as_deref(), name);
        c.arg(format!("--defaults-extra-file={}", self.options.display()));
        c
    }

    pub fn dump_tool(&self) -> Command {
        if self.mariadb {
            self.tool(&["mariadb-dump", "mysqldump"])
        } else {
            self.tool(&["mysqldump", "mariadb-dump"])
        }
    }

    pub fn client(&self) -> Command {
        if self.mariadb {
            self.tool(&["mariadb", "mysql"])
        } else {
            self.tool(&["mysql", "mariadb"])
        }
    }

    /// Run SQL in `database`; tab-separated rows, no headers.
    pub fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        let mut c = self.client();
        c.args(["-N", "-B", "-e", sql]);
        if !database.is_empty() {
            c.arg(database);
        }
        let out = child::output(c, "the query failed")?;
        Ok(out
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    /// Exact row counts of every base table of `database`.
    pub fn row_counts(&self, database: &str) -> Result<BTreeMap<String, u64>> {
        let tables = self.query(
            database,
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name",
        )?;
        if tables.is_empty() {
            return Ok(BTreeMap::new());
        }
        let sql = tables
            .iter()
            .map(|t| {
                let name = &t[0];
                format!(
                    "SELECT '{}', COUNT(*) FROM `{}`",
                    name.replace('\\', "\\\\").replace('\'', "''"),
                    name.replace('`', "``")
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        Ok(super::counts_from_rows(self.query(database, &sql)?))
    }
}

pub fn backup(session: &mut BackupSession<'_>, src: &Source, warn: &dyn Warn) -> Result<()> {
    let conn = MyConn::for_source(src)?;
    let db = conn.database.clone();
    let version = conn.query("", "SELECT VERSION()")?;
    // a binary log is on when SHOW MASTER STATUS has a row: ask the dump for
    // the position that matches its snapshot (written into the dump head)
    let binlog = conn
        .query("", "SHOW MASTER STATUS")
        .map(|r| !r.is_empty())
        .unwrap_or(false);
    let counts = conn.row_counts(&db)?;
    let mut cmd = conn.dump_tool();
    cmd.args([
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--skip-dump-date",
        "--hex-blob",
    ]);
    if src.order_by_primary {
        cmd.arg("--order-by-primary");
    }
    if binlog {
        cmd.arg("--master-data=2");
    }
    cmd.arg(&db);
    let mut meta = base_meta(src);
    meta.insert("database".into(), json!(db));
    meta.insert("url".into(), json!(conn.display()));
    meta.insert("format".into(), json!("sql"));
    if let Some(v) = version.first().and_then(|r| r.first()) {
        meta.insert("server_version".into(), json!(v));
    }
    if let Some(v) = child::version(conn.dump_tool()) {
        meta.insert("tool_version".into(), json!(v));
    }
    if let Some((cs, co)) = charset(&conn, &db)? {
        meta.insert("charset".into(), json!(cs));
        meta.insert("collation".into(), json!(co));
    }
    meta.insert("row_counts".into(), json!(counts));
    meta.insert(
        "row_counts_note".into(),
        json!("counted just before the dump, outside its transaction"),
    );
    let program = child::program_name(&cmd);
    let mut argv = vec![program.clone()];
    argv.extend(
        cmd.get_args()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned()),
    );
    let streamed = stream_command(session, &src.name, cmd, Some(argv), meta, warn)?;
    require_trailer(
        session,
        &src.name,
        &streamed,
        b"-- Dump completed",
        &program,
    )?;
    if let Some(pos) = binlog_position(&streamed.head)
        && let Some(e) = session.entry_mut(&src.name)
    {
        e.meta.insert("binlog".into(), json!(pos));
    }
    Ok(())
}

/// `-- CHANGE MASTER TO MASTER_LOG_FILE='x', MASTER_LOG_POS=n;` near the head.
fn binlog_position(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().find(|l| l.contains("CHANGE MASTER TO"))?;
    let start = line.find("MASTER_LOG_FILE")?;
    Some(line[start..].trim_end_matches(';').to_string())
}

fn meta_str(m: &serde_json::Map<String, serde_json::Value>, k: &str) -> String {
    m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
}

/// The default character set and collation of `db`, if it exists.
pub fn charset(conn: &MyConn, db: &str) -> Result<Option<(String, String)>> {
    let rows = conn.query(
        "",
        &format!(
            "SELECT default_character_set_name, default_collation_name FROM \
             information_schema.schemata WHERE schema_name = '{}'",
            db.replace('\\', "\\\\").replace('\'', "''")
        ),
    )?;
    Ok(rows
        .into_iter()
        .find(|r| r.len() == 2)
        .map(|r| (r[0].clone(), r[1].clone())))
}

/// `db` exists on the server.
pub fn database_exists(conn: &MyConn, db: &str) -> Result<bool> {
    let rows = conn.query(
        "",
        &format!(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = '{}'",
            db.replace('\\', "\\\\").replace('\'', "''")
        ),
    )?;
    Ok(!rows.is_empty())
}

/// Drop and recreate the database, load the dump with the mysql client,
/// and compare row counts with the backup's. MySQL cannot rename a
/// database, so there is no restore-beside: the safety snapshot taken just
/// before is the way back.
pub fn restore(
    repo: &crate::repo::Repo,
    entry: &crate::format::snapshot::Entry,
    conn: &MyConn,
    progress: &dyn crate::pipeline::Progress,
) -> Result<super::postgres::Outcome> {
    let db = &conn.database;
    let q = format!("`{}`", db.replace('`', "``"));
    // recreate it with its character set and collation: those of the
    // database being replaced, else those recorded at backup
    let (cs, co) = match charset(conn, db)? {
        Some(v) => v,
        None => (
            meta_str(&entry.meta, "charset"),
            meta_str(&entry.meta, "collation"),
        ),
    };
    let mut create = format!("CREATE DATABASE {q}");
    let word = |v: &str| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !cs.is_empty() && word(&cs) {
        create += &format!(" CHARACTER SET {cs}");
    }
    if !co.is_empty() && word(&co) {
        create += &format!(" COLLATE {co}");
    }
    conn.query("", &format!("DROP DATABASE IF EXISTS {q}; {create}"))?;
    let mut c = conn.client();
    c.arg(db);
    child::feed(c, "the restore failed", |w| {
        crate::pipeline::restore_stream(repo, &entry.content(), w, progress)
    })?;
    let mut out = super::postgres::Outcome::default();
    if let Some(recorded) = super::postgres::recorded_counts(&entry.meta) {
        out.mismatches = super::postgres::count_differences(&recorded, &conn.row_counts(db)?);
    }
    out.notes.push(format!("restored into {db}"));
    Ok(out)
}
