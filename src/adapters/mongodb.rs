//! MongoDB: `mongodump --archive` (one collection at a time, so the archive
//! is deterministic enough to deduplicate; never `--gzip`), restored with
//! `mongorestore --archive --drop`. The URI, password included, reaches the
//! tools in a YAML `--config` file (0600). mongod is not packaged for Debian:
//! the tests check this adapter against the tools' stream contract.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::child;
use super::secret::{Secret, SecretDir, source_password, split_url_password};
use super::{Warn, base_meta, stream_command};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::BackupSession;
use crate::plan::Source;

/// The first bytes of a mongodump archive (magic 0x8199e26d, little-endian).
pub const ARCHIVE_MAGIC: [u8; 4] = [0x6d, 0xe2, 0x99, 0x81];

pub struct MongoConn {
    display: String,
    config: PathBuf,
    bin_dir: Option<PathBuf>,
    _secrets: SecretDir,
}

/// A YAML double-quoted scalar.
fn yaml_quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

impl MongoConn {
    pub fn new(
        raw_url: &str,
        password: Option<Secret>,
        bin_dir: Option<&Path>,
    ) -> Result<MongoConn> {
        let (url, from_url) = split_url_password(raw_url)?;
        if !matches!(url.scheme(), "mongodb" | "mongodb+srv") {
            return Err(Error::usage(format!("{url} is not a MongoDB URI"))
                .with_hint("e.g. mongodb://user@host:27017/app?authSource=admin"));
        }
        let password = password.or(from_url);
        let mut yaml = format!("uri: {}\n", yaml_quoted(url.as_str()));
        if let Some(pw) = &password {
            yaml += &format!("password: {}\n", yaml_quoted(pw));
        }
        let secrets = SecretDir::new()?;
        let config = secrets.write("mongo.yaml", &yaml)?;
        drop(zeroize::Zeroizing::new(yaml));
        Ok(MongoConn {
            display: url.to_string(),
            config,
            bin_dir: bin_dir.map(Path::to_path_buf),
            _secrets: secrets,
        })
    }

    pub fn for_source(src: &Source) -> Result<MongoConn> {
        let raw = src.url.as_deref().expect("validated: mongodb has a url");
        // a password in the URL itself is taken by `new`
        let pw = source_password(src)?;
        MongoConn::new(raw, pw, src.bin_dir.as_deref())
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn tool(&self, name: &str) -> Command {
        let mut c = child::tool(self.bin_dir.as_deref(), name);
        c.arg(format!("--config={}", self.config.display()));
        c
    }
}

pub fn backup(session: &mut BackupSession<'_>, src: &Source, warn: &dyn Warn) -> Result<()> {
    let conn = MongoConn::for_source(src)?;
    let mut cmd = conn.tool("mongodump");
    cmd.args(["--archive", "--numParallelCollections=1"]);
    let mut meta = base_meta(src);
    meta.insert("url".into(), json!(conn.display()));
    meta.insert("format".into(), json!("archive"));
    if let Some(v) = child::version(child::tool(src.bin_dir.as_deref(), "mongodump")) {
        meta.insert("tool_version".into(), json!(v));
    }
    let argv = Some(vec![
        "mongodump".into(),
        "--config=FILE".into(),
        "--archive".into(),
        "--numParallelCollections=1".into(),
    ]);
    let streamed = stream_command(session, &src.name, cmd, argv, meta, warn)?;
    if !streamed.head.starts_with(&ARCHIVE_MAGIC) {
        session.discard(&src.name);
        return Err(Error::new(
            ErrorKind::CommandFailed,
            "mongodump did not write an archive (no archive magic at the start); no snapshot was made",
        ));
    }
    Ok(())
}

/// `mongorestore --archive --drop` fed from the entry.
pub fn restore(
    repo: &crate::repo::Repo,
    entry: &crate::format::snapshot::Entry,
    conn: &MongoConn,
    progress: &dyn crate::pipeline::Progress,
) -> Result<super::postgres::Outcome> {
    let mut c = conn.tool("mongorestore");
    c.args(["--archive", "--drop"]);
    child::feed(c, "the restore failed", |w| {
        crate::pipeline::restore_stream(repo, &entry.content(), w, progress)
    })?;
    Ok(super::postgres::Outcome {
        notes: vec![format!("mongorestore --drop into {}", conn.display())],
        mismatches: Vec::new(),
    })
}
