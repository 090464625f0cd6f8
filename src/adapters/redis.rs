//! Redis: an RDB fetched with `redis-cli --rdb` into a private temp file,
//! checked (magic, end marker, CRC-64) before it is stored, so that neither a
//! cut transfer nor the end-of-file marker that diskless replication appends
//! ends up in a snapshot. The password reaches redis-cli as REDISCLI_AUTH in
//! its environment only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::child;
use super::secret::{Secret, SecretDir, source_password, split_url_password};
use super::{Warn, base_meta};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::BackupSession;
use crate::plan::Source;

pub struct RedisConn {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Secret>,
    bin_dir: Option<PathBuf>,
    display: String,
}

impl RedisConn {
    pub fn new(
        raw_url: &str,
        password: Option<Secret>,
        bin_dir: Option<&Path>,
    ) -> Result<RedisConn> {
        let (url, from_url) = split_url_password(raw_url)?;
        if url.scheme() != "redis" {
            return Err(Error::usage(format!("{url} is not a Redis URL"))
                .with_hint("e.g. redis://127.0.0.1:6379"));
        }
        Ok(RedisConn {
            host: url.host_str().unwrap_or("127.0.0.1").to_string(),
            port: url.port().unwrap_or(6379),
            user: Some(url.username().to_string()).filter(|u| !u.is_empty()),
            password: password.or(from_url),
            bin_dir: bin_dir.map(Path::to_path_buf),
            display: url.to_string(),
        })
    }

    pub fn for_source(src: &Source) -> Result<RedisConn> {
        let raw = src.url.as_deref().expect("validated: redis has a url");
        // a password in the URL itself is taken by `new`
        let pw = source_password(src)?;
        RedisConn::new(raw, pw, src.bin_dir.as_deref())
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn cli(&self) -> Command {
        let mut c = child::tool(self.bin_dir.as_deref(), "redis-cli");
        c.args(["-h", &self.host, "-p", &self.port.to_string()]);
        if let Some(u) = &self.user {
            c.args(["--user", u]);
        }
        if let Some(pw) = &self.password {
            c.env("REDISCLI_AUTH", pw.as_str());
        }
        c
    }

    /// One command; its reply as text.
    pub fn command(&self, args: &[&str]) -> Result<String> {
        let mut c = self.cli();
        c.arg("--no-raw").args(args);
        let out = child::output(c, "the Redis command failed")?;
        if out.starts_with("(error)") {
            return Err(Error::new(
                ErrorKind::CommandFailed,
                format!("redis {}: {}", args[0], out.trim()),
            ));
        }
        Ok(out)
    }

    /// `INFO` section as key → value.
    pub fn info(&self, section: &str) -> Result<BTreeMap<String, String>> {
        let mut c = self.cli();
        c.args(["INFO", section]);
        let out = child::output(c, "INFO failed")?;
        // redis-cli exits 0 on an error reply when not on a terminal
        let first = out.lines().next().unwrap_or("");
        if ["NOAUTH", "WRONGPASS", "ERR", "NOPERM", "LOADING"]
            .iter()
            .any(|p| first.starts_with(p))
        {
            return Err(Error::new(
                ErrorKind::CommandFailed,
                format!("redis at {}: {}", self.display, first.trim()),
            )
            .with_hint(
                "check the password (password-file, password-env or the URL) and the user's ACL",
            ));
        }
        Ok(out
            .lines()
            .filter_map(|l| l.trim_end().split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// Keys and keys with a TTL per database (`db0` → (keys, expires)),
    /// from INFO keyspace.
    pub fn keyspace(&self) -> Result<BTreeMap<String, (u64, u64)>> {
        Ok(self
            .info("keyspace")?
            .into_iter()
            .filter_map(|(db, v)| {
                let field = |name: &str| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                        .and_then(|n| n.parse::<u64>().ok())
                };
                Some((db, (field("keys")?, field("expires").unwrap_or(0))))
            })
            .collect())
    }

    /// Differences between the key counts recorded at backup and this
    /// server's. Keys with a TTL may rightly have expired since (a drill a
    /// day later): only keys without one are compared, unless the snapshot
    /// is older than that distinction and recorded plain key counts.
    pub fn count_differences(&self, meta: &serde_json::Map<String, Value>) -> Result<Vec<String>> {
        let Some(recorded) = super::postgres::recorded_counts(meta) else {
            return Ok(Vec::new());
        };
        let persistent = meta.get("counted").and_then(Value::as_str) == Some(PERSISTENT);
        let now = self
            .keyspace()?
            .into_iter()
            .map(|(db, (keys, expires))| {
                (
                    db,
                    if persistent {
                        keys - expires.min(keys)
                    } else {
                        keys
                    },
                )
            })
            .filter(|(_, n)| *n > 0 || !persistent)
            .collect();
        Ok(super::postgres::count_differences(&recorded, &now))
    }

    /// Fetch an RDB into `path` and check it.
    pub fn fetch_rdb(&self, path: &Path, warn: &dyn Warn) -> Result<RdbInfo> {
        let mut c = self.cli();
        c.arg("--rdb").arg(path);
        let run = child::Running::spawn(c, std::process::Stdio::null())?;
        let (status, lines) = run.wait()?;
        if !path.exists() {
            child::check_status("redis-cli", status, &lines, "no snapshot was made")?;
            return Err(Error::new(
                ErrorKind::CommandFailed,
                "redis-cli wrote no RDB; no snapshot was made",
            ));
        }
        match check_rdb_file(path) {
            Ok(info) => {
                if !status.success() {
                    // some redis-cli versions exit non-zero after a complete
                    // transfer; the RDB's own checksum is the proof
                    warn.warn(&format!(
                        "redis-cli {} but the RDB it wrote is complete (checksum verified)",
                        child::how(status)
                    ));
                }
                if info.trailing > 0 {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| Error::io("opening", path, e))?;
                    f.set_len(info.len as u64)
                        .map_err(|e| Error::io("truncating", path, e))?;
                }
                Ok(info)
            }
            Err(why) => {
                child::check_status("redis-cli", status, &lines, "no snapshot was made")?;
                Err(Error::new(
                    ErrorKind::CommandFailed,
                    format!("the RDB from redis-cli is not valid ({why}); no snapshot was made"),
                ))
            }
        }
    }
}

#[derive(Debug)]
pub struct RdbInfo {
    pub version: u32,
    /// Length of the RDB proper.
    pub len: usize,
    /// Bytes after it (the diskless-transfer end marker), to cut off.
    pub trailing: usize,
    pub checksum: bool,
}

const CRC64_REDIS: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// The end marker diskless replication may leave after the RDB.
const DISKLESS_TRAILER: usize = 40;
/// What the checks read at the end: 0xFF, the checksum, and a trailer.
const TAIL: usize = 9 + DISKLESS_TRAILER;

/// An RDB is "REDIS" + 4 version digits … 0xFF + CRC-64 (little-endian, 0
/// when checksums are off). Diskless transfers may leave a 40-byte end
/// marker after it.
pub fn check_rdb(bytes: &[u8]) -> std::result::Result<RdbInfo, String> {
    check_rdb_stream(bytes, bytes.len())
}

/// `check_rdb` of a file, read once in bounded memory (RDBs can be large).
pub fn check_rdb_file(path: &Path) -> std::result::Result<RdbInfo, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let n = f.metadata().map_err(|e| e.to_string())?.len() as usize;
    check_rdb_stream(f, n)
}

/// The CRC runs over everything before the 8 checksum bytes; with or
/// without a trailer, that is everything up to the last `TAIL` bytes plus a
/// prefix of them, so one pass and a copy of the digest serve both cases.
fn check_rdb_stream(mut r: impl std::io::Read, n: usize) -> std::result::Result<RdbInfo, String> {
    if n < 18 {
        return Err(format!("{n} bytes without the REDIS header"));
    }
    let head = n.saturating_sub(TAIL);
    let mut digest = CRC64_REDIS.digest();
    let mut first = Vec::with_capacity(9);
    let mut tail = Vec::with_capacity(TAIL);
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = 0;
    loop {
        let k = r
            .read(&mut buf)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if k == 0 {
            break;
        }
        let chunk = &buf[..k];
        let want = (9 - first.len().min(9)).min(k);
        first.extend_from_slice(&chunk[..want]);
        let split = head.saturating_sub(pos).min(k);
        digest.update(&chunk[..split]);
        tail.extend_from_slice(&chunk[split..]);
        pos += k;
    }
    if pos != n {
        return Err(format!(
            "{pos} bytes read, {n} expected: it changed while read"
        ));
    }
    if !first.starts_with(b"REDIS") {
        return Err(format!("{n} bytes without the REDIS header"));
    }
    let version: u32 = std::str::from_utf8(&first[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or("bad version digits")?;
    for trailing in [0, DISKLESS_TRAILER] {
        if n < 18 + trailing {
            continue;
        }
        let len = n - trailing;
        // positions inside `tail`, which starts at byte `head`
        let (marker, sum) = (len - 9 - head, len - 8 - head);
        if tail[marker] != 0xFF {
            continue;
        }
        let stored = u64::from_le_bytes(tail[sum..sum + 8].try_into().unwrap());
        let info = |checksum| RdbInfo {
            version,
            len,
            trailing,
            checksum,
        };
        if stored == 0 {
            return Ok(info(false));
        }
        let mut d = digest.clone();
        d.update(&tail[..sum]);
        if d.finalize() == stored {
            return Ok(info(true));
        }
    }
    Err("no end marker with a matching checksum: the transfer was cut".into())
}

/// What the recorded `row_counts` of a Redis entry count.
const PERSISTENT: &str = "keys without a TTL";

/// Keys without a TTL per database that has any.
fn persistent_keys(keyspace: &BTreeMap<String, (u64, u64)>) -> BTreeMap<String, u64> {
    keyspace
        .iter()
        .map(|(db, (keys, expires))| (db.clone(), keys - (*expires).min(*keys)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

pub fn backup(session: &mut BackupSession<'_>, src: &Source, warn: &dyn Warn) -> Result<()> {
    let conn = RedisConn::for_source(src)?;
    let server = conn.info("server")?;
    // INFO cannot say what the RDB holds, only what the server held just
    // before and after it was taken: record the counts of keys without a
    // TTL when they did not move in between
    let before = persistent_keys(&conn.keyspace()?);
    let scratch = SecretDir::new()?;
    let rdb_path = scratch.path().join("dump.rdb");
    let info = conn.fetch_rdb(&rdb_path, warn)?;
    let after = persistent_keys(&conn.keyspace()?);
    let mut meta = base_meta(src);
    meta.insert("url".into(), json!(conn.display()));
    meta.insert("format".into(), json!("rdb"));
    if let Some(v) = server.get("redis_version") {
        meta.insert("server_version".into(), json!(v));
    }
    meta.insert("rdb_version".into(), json!(info.version));
    meta.insert("rdb_checksum".into(), json!(info.checksum));
    if before == after {
        meta.insert("row_counts".into(), json!(after));
        meta.insert("counted".into(), json!(PERSISTENT));
    } else {
        warn.warn(&format!(
            "{}: keys without a TTL changed while the RDB was taken; key counts are not \
             recorded, so restores and drills of this snapshot cannot compare them",
            src.name
        ));
    }
    let mut f = std::fs::File::open(&rdb_path).map_err(|e| Error::io("opening", &rdb_path, e))?;
    session.stream(
        &src.name,
        &mut f,
        Some(vec!["redis-cli".into(), "--rdb".into(), "FILE".into()]),
        meta,
    )?;
    Ok(())
}

/// Place the RDB where the server loads it from (its `dir`/`dbfilename`,
/// which must be on this machine), then make it load it: `DEBUG RELOAD
/// NOSAVE` where the server allows DEBUG, else `SHUTDOWN NOSAVE` so that its
/// supervisor starts it again on the new file. AOF must be off (with AOF on,
/// Redis ignores the RDB at start).
pub fn restore(
    repo: &crate::repo::Repo,
    entry: &crate::format::snapshot::Entry,
    conn: &RedisConn,
    progress: &dyn crate::pipeline::Progress,
) -> Result<super::postgres::Outcome> {
    let get = |key: &str| -> Result<String> {
        let mut c = conn.cli();
        c.args(["--raw", "CONFIG", "GET", key]);
        let out = child::output(c, "CONFIG GET failed")?;
        out.lines()
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| Error::other(format!("redis CONFIG GET {key}: no answer")))
    };
    if get("appendonly")? == "yes" {
        return Err(Error::usage(
            "the Redis server has appendonly on: it would ignore a restored RDB",
        )
        .with_hint("CONFIG SET appendonly no, restore, then turn AOF back on (BGREWRITEAOF)"));
    }
    let dir = PathBuf::from(get("dir")?);
    let file = dir.join(get("dbfilename")?);
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "the Redis server's directory {} is not on this machine",
            dir.display()
        ))
        .with_hint("run the restore on the Redis host"));
    }
    let rdb = super::target::write_beside(repo, entry, &file, true, progress)?;
    check_rdb_file(rdb.path())
        .map_err(|why| Error::corrupt(format!("the restored RDB is not valid: {why}")))?;
    rdb.persist()?;
    let mut out = super::postgres::Outcome::default();
    out.notes.push(format!("RDB placed at {}", file.display()));
    match conn.command(&["DEBUG", "RELOAD", "NOSAVE"]) {
        Ok(_) => {
            out.notes
                .push("Redis reloaded it (DEBUG RELOAD NOSAVE)".into());
            out.mismatches = conn.count_differences(&entry.meta)?;
        }
        Err(_) => {
            // DEBUG is disabled by default since Redis 7: stop without saving
            // (which would overwrite the file) and let the supervisor restart it
            let _ = conn.command(&["SHUTDOWN", "NOSAVE"]);
            out.notes.push(
                "DEBUG is disabled on this server: it was stopped with SHUTDOWN NOSAVE and loads \
                 the RDB when started again (systemd/supervisor restart it; start it yourself \
                 otherwise)"
                    .into(),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdb(payload: &[u8]) -> Vec<u8> {
        let mut v = b"REDIS0011".to_vec();
        v.extend_from_slice(payload);
        v.push(0xFF);
        let crc = CRC64_REDIS.checksum(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }

    #[test]
    fn rdb_checks() {
        let good = rdb(b"\xfa\x09redis-ver\x057.0.0");
        let i = check_rdb(&good).unwrap();
        assert_eq!((i.version, i.len, i.checksum), (11, good.len(), true));
        let mut framed = good.clone();
        framed.extend_from_slice(&[b'x'; 40]);
        assert_eq!(check_rdb(&framed).unwrap().len, good.len());
        let cut = &good[..good.len() - 3];
        assert!(check_rdb(cut).unwrap_err().contains("cut"));
        let mut flipped = good.clone();
        flipped[12] ^= 1;
        assert!(check_rdb(&flipped).is_err());
        assert!(check_rdb(b"hello world, not an rdb").is_err());
    }
}
