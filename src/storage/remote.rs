//! A repository on an SFTP server or in an S3-compatible bucket, through
//! Apache OpenDAL (README "Remote repositories" says why OpenDAL).
//!
//! OpenDAL is asynchronous; coffre's pipelines are threads. Each storage
//! owns a small tokio runtime and drives OpenDAL's blocking operator from
//! coffre's own threads. Every request goes through a timeout and a retry
//! with exponential backoff and jitter: OpenDAL marks timeouts, 429, 5xx
//! and dropped connections as temporary. Anything else, and a temporary
//! error that outlasts the retries, fails the command; "not found" is the
//! only error ever taken for absence.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opendal::blocking;
use opendal::layers::{RetryLayer, TimeoutLayer};

use super::Storage;
use super::location::{AzureLocation, Location, S3Location, SftpLocation};
use crate::error::{Error, ErrorKind, Result};

/// How hard a remote storage tries before an error is final.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// One request (a whole pack upload included) must finish within this.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: env_u64("COFFRE_RETRIES", 6) as usize,
            min_delay: Duration::from_millis(env_u64("COFFRE_RETRY_MIN_MS", 500)),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(env_u64("COFFRE_REQUEST_TIMEOUT_SECS", 300)),
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub struct RemoteStorage {
    op: blocking::Operator,
    /// SFTP writes in place: write a temp file, then rename it.
    rename_writes: bool,
    label: String,
    // dropped after `op`
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl RemoteStorage {
    /// Write `body` as `path`: an S3 or Azure PUT is atomic; over SFTP, a temp
    /// file renamed into place.
    fn put(&self, path: &str, body: Vec<u8>) -> Result<()> {
        if !self.rename_writes {
            // an S3 PUT is atomic: the object appears whole or not at all
            self.op
                .write(path, body)
                .map_err(|e| self.err("writing", path, e))?;
            return Ok(());
        }
        let written = (body.len(), blake3::hash(&body));
        let name = path.rsplit('/').next().unwrap_or(path);
        let tmp = format!(
            "tmp/{name}.{}.{}",
            std::process::id(),
            hex::encode(crate::crypto::random_array::<6>())
        );
        self.op
            .write(&tmp, body)
            .map_err(|e| self.err("writing", &tmp, e))?;
        if let Some((dir, _)) = path.rsplit_once('/') {
            self.op
                .create_dir(&format!("{dir}/"))
                .map_err(|e| self.err("creating", dir, e))?;
        }
        if let Err(e) = self.op.rename(&tmp, path) {
            // without the posix-rename extension (OpenSSH has it), SFTP's
            // rename does not replace: the same bytes already there are
            // fine (content-named objects), anything else is an error
            let _ = self.op.delete(&tmp);
            let there = self
                .op
                .read(path)
                .map(|b| (b.len(), blake3::hash(&b.to_bytes())));
            if there.ok() != Some(written) {
                return Err(self.err("renaming into place", path, e).with_hint(
                    "the SFTP server cannot replace a file (no posix-rename extension)",
                ));
            }
        }
        Ok(())
    }

    pub fn open(location: &Location, retry: &RetryPolicy) -> Result<RemoteStorage> {
        let label = location.to_string();
        let fail = |e: opendal::Error| {
            Error::usage(format!("cannot use {label}: {e}"))
                .with_hint("check the location's syntax in the README (\"Remote repositories\")")
        };
        let (op, rename_writes) = match location {
            Location::Local(_) => unreachable!("local repositories use LocalStorage"),
            Location::Sftp(s) => (sftp(s).map_err(fail)?, true),
            Location::S3(s) => (s3(s).map_err(fail)?, false),
            // a blob upload is atomic like an S3 PUT
            Location::Azure(a) => (azblob(a).map_err(fail)?, false),
        };
        let notify_label = label.clone();
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(retry.timeout)
                    .with_io_timeout(Duration::from_secs(60)),
            )
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_max_times(retry.max_retries)
                    .with_min_delay(retry.min_delay)
                    .with_max_delay(retry.max_delay)
                    .with_notify(move |ev: opendal::layers::RetryEvent<'_>| {
                        eprintln!(
                            "warning: {notify_label}: {:?} failed ({}); retry {} in {:.1} s",
                            ev.op,
                            short(ev.err),
                            ev.attempt,
                            ev.retry_after.as_secs_f64()
                        );
                    }),
            );
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("coffre-io")
                .enable_all()
                .build()
                .map_err(|e| Error::other(format!("starting the I/O runtime: {e}")))?,
        );
        let op = {
            let _entered = runtime.enter();
            blocking::Operator::new(op).map_err(|e| Error::other(e.to_string()))?
        };
        Ok(RemoteStorage {
            op,
            rename_writes,
            label,
            _runtime: runtime,
        })
    }

    fn err(&self, what: &str, path: &str, e: opendal::Error) -> Error {
        let kind = match e.kind() {
            opendal::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Other,
        };
        let mut err = Error::new(
            kind,
            format!(
                "{what} {} on {}: {}",
                if path.is_empty() { "/" } else { path },
                self.label,
                short(&e)
            ),
        );
        let text = e.to_string();
        if text.contains("NoSuchBucket") || text.contains("ContainerNotFound") {
            err = err.with_hint(
                "create the bucket (container) first: coffre creates objects, not buckets",
            );
        } else if e.kind() == opendal::ErrorKind::PermissionDenied {
            err = err.with_hint("check the credentials and the permissions on the remote side");
        } else if e.is_temporary() {
            err = err.with_hint(
                "the remote kept failing after retries (network, throttling or an outage); \
                 run the command again later",
            );
        }
        err
    }

    /// Names of the entries directly in `dir` (files and directories).
    fn list_entries(&self, dir: &str, recursive: bool) -> Result<Vec<(String, bool)>> {
        // OpenDAL names the root "/" and lists paths without a leading slash
        let prefix = match dir.trim_end_matches('/') {
            "" => String::new(),
            d => format!("{d}/"),
        };
        let entries = match self.op.list_options(
            if prefix.is_empty() { "/" } else { &prefix },
            opendal::options::ListOptions {
                recursive,
                ..Default::default()
            },
        ) {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("listing", dir, e)),
        };
        let mut out = Vec::new();
        for ent in entries {
            let Some(rel) = ent.path().strip_prefix(&prefix) else {
                continue;
            };
            let is_dir = rel.ends_with('/') || ent.metadata().is_dir();
            let rel = rel.trim_end_matches('/');
            if !rel.is_empty() {
                out.push((rel.to_string(), is_dir));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// An OpenDAL error without its (long) context list: kind, HTTP status
/// and the service's own words.
fn short(e: &opendal::Error) -> String {
    let s = e.to_string();
    let status: String = s
        .find("status: ")
        .map(|i| {
            s[i + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect()
        })
        .unwrap_or_default();
    let mut out = e.kind().to_string();
    if !status.is_empty() {
        out.push_str(&format!(" (HTTP {status})"));
    }
    let detail = s.split_once(" => ").map(|(_, d)| d.trim()).unwrap_or("");
    if !detail.is_empty() {
        out.push_str(": ");
        out.extend(detail.chars().take(300));
    }
    out
}

fn sftp(s: &SftpLocation) -> opendal::Result<opendal::Operator> {
    let mut endpoint = String::from("ssh://");
    if let Some(u) = &s.user {
        endpoint.push_str(u);
        endpoint.push('@');
    }
    endpoint.push_str(&s.host);
    if let Some(p) = s.port {
        endpoint.push_str(&format!(":{p}"));
    }
    let mut b = opendal::services::Sftp::default()
        .endpoint(&endpoint)
        .root(&s.path)
        .known_hosts_strategy(&s.known_hosts);
    if let Some(u) = &s.user {
        b = b.user(u);
    }
    if let Some(k) = &s.key {
        b = b.key(&k.to_string_lossy());
    }
    opendal::Operator::new(b)
}

fn s3(s: &S3Location) -> opendal::Result<opendal::Operator> {
    let mut b = opendal::services::S3::default()
        .bucket(&s.bucket)
        .root(&format!("/{}", s.prefix))
        // no instance-metadata probing: it stalls for seconds off AWS
        .disable_ec2_metadata();
    if let Some(e) = &s.endpoint {
        b = b.endpoint(e);
    }
    b = b.region(s.region.as_deref().unwrap_or("us-east-1"));
    if s.virtual_host {
        b = b.enable_virtual_host_style();
    }
    if let Some(p) = &s.profile {
        b = b.profile(p);
    }
    opendal::Operator::new(b)
}

/// Azure Blob Storage through the same layers; the account and its key
/// come from the environment (the names the Azure CLI uses).
fn azblob(a: &AzureLocation) -> opendal::Result<opendal::Operator> {
    let var = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok());
    let account = var(&["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"]);
    let mut b = opendal::services::Azblob::default()
        .container(&a.container)
        .root(&format!("/{}", a.prefix));
    let endpoint = a.endpoint.clone().or_else(|| {
        account
            .as_ref()
            .map(|acc| format!("https://{acc}.blob.core.windows.net"))
    });
    if let Some(e) = &endpoint {
        b = b.endpoint(e);
    }
    if let Some(acc) = &account {
        b = b.account_name(acc);
    }
    if let Some(key) = var(&["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"]) {
        b = b.account_key(&key);
    }
    if let Some(sas) = var(&["AZURE_STORAGE_SAS_TOKEN"]) {
        b = b.sas_token(&sas);
    }
    opendal::Operator::new(b)
}

impl Storage for RemoteStorage {
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.op
            .read(path)
            .map(|b| b.to_vec())
            .map_err(|e| self.err("reading", path, e))
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let buf = self
            .op
            .read_options(
                path,
                opendal::options::ReadOptions {
                    range: (offset..offset + len as u64).into(),
                    ..Default::default()
                },
            )
            .map_err(|e| self.err("reading", path, e))?;
        if buf.len() != len {
            return Err(Error::corrupt(format!(
                "{path} on {} is shorter than expected (truncated?)",
                self.label
            )));
        }
        // one contiguous piece (the usual case) becomes the Vec without a copy
        Ok(Vec::from(buf.to_bytes()))
    }

    fn size(&self, path: &str) -> Result<u64> {
        self.op
            .stat(path)
            .map(|m| m.content_length())
            .map_err(|e| self.err("inspecting", path, e))
    }

    fn exists(&self, path: &str) -> Result<bool> {
        self.op
            .exists(path)
            .map_err(|e| self.err("inspecting", path, e))
    }

    fn write_atomic(&self, path: &str, parts: &[&[u8]]) -> Result<()> {
        self.put(path, parts.concat())
    }

    fn write_owned(&self, path: &str, mut parts: Vec<Vec<u8>>) -> Result<()> {
        let body = match parts.len() {
            1 => parts.pop().unwrap(),
            _ => parts.concat(),
        };
        self.put(path, body)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self
            .list_entries(dir, false)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self
            .list_entries(dir, true)?
            .into_iter()
            .filter(|(_, is_dir)| !is_dir)
            .map(|(n, _)| n)
            .collect())
    }

    fn remove(&self, path: &str) -> Result<()> {
        self.op
            .delete(path)
            .map_err(|e| self.err("removing", path, e))
    }

    fn remove_stale_tmp(&self, older_than: Duration) -> Result<u64> {
        let now = SystemTime::now();
        let mut removed = 0;
        for name in self.list_files("tmp")? {
            let path = format!("tmp/{name}");
            let modified = match self.op.stat(&path) {
                Ok(m) => m.last_modified().map(SystemTime::from),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err("inspecting", &path, e)),
            };
            let old = modified
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > older_than);
            if old {
                self.remove(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn is_local(&self) -> bool {
        false
    }
}
