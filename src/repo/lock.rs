//! Repository locks (format-spec/locks.md): files under `locks/`, so that
//! every process using the repository — on this host or another — sees them.
//!
//! Backups, restores and other readers hold shared locks; prune holds an
//! exclusive one, so it never deletes a pack a running backup may still
//! reference. A lock carries a deadline that its holder keeps pushing
//! forward; a process frozen past its deadline (SIGSTOP, a suspended VM)
//! loses its lease, and a backup checks its lease before committing its
//! snapshot: whatever prune did meanwhile, a snapshot is never committed on
//! top of packs that may have been deleted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::format::label;
use crate::storage::Storage;

pub const LOCKS: &str = "locks";

/// Milliseconds a lock stays valid after its last refresh: 10 minutes, or
/// COFFRE_LOCK_LEASE_SECS (a knob for tests; at least 1).
fn lease_ms() -> i64 {
    std::env::var("COFFRE_LOCK_LEASE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|&n| n >= 1.0)
        .map_or(600_000, |n| (n * 1000.0) as i64)
}

/// The content of a lock file (JSON, plaintext: it names a process, never data).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInfo {
    pub version: u32,
    pub exclusive: bool,
    pub command: String,
    pub host: String,
    pub user: String,
    pub pid: u32,
    /// The process's start time (clock ticks since boot, /proc/PID/stat) so
    /// that a reused pid is not taken for the holder.
    pub pid_start: u64,
    pub created: String,
    /// Unix time in milliseconds after which the lock is stale unless
    /// refreshed.
    pub expires: i64,
}

/// Lock files larger than this are rejected unparsed (a real one is ~250 bytes).
pub const MAX_LEN: usize = 4096;

impl LockInfo {
    /// Parse a lock file. Its text is shown to the user when the lock is in
    /// the way, and anyone who can write to the storage can plant one, so
    /// version, size and every text field are checked (format-spec/locks.md).
    pub fn decode(bytes: &[u8]) -> Result<LockInfo> {
        if bytes.len() > MAX_LEN {
            return Err(Error::corrupt(format!(
                "is {} bytes, more than {MAX_LEN}",
                bytes.len()
            )));
        }
        let info: LockInfo = serde_json::from_slice(bytes).map_err(|e| {
            let e = e.to_string();
            Error::corrupt(format!(
                "is not valid JSON for a lock: {}",
                label::shown(&e)
            ))
        })?;
        if info.version != 1 {
            return Err(Error::corrupt(format!(
                "has version {} (this coffre reads 1)",
                info.version
            )));
        }
        label::check("its command", &info.command, label::MAX_LABEL)?;
        label::check("its host", &info.host, label::MAX_LABEL)?;
        label::check("its user", &info.user, label::MAX_LABEL)?;
        label::check("its creation time", &info.created, label::MAX_TIME)?;
        Ok(info)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} lock of `coffre {}` (pid {} on {}, user {}) since {}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.command,
            self.pid,
            self.host,
            self.user,
            self.created
        )
    }

    /// Past its deadline: its holder stopped refreshing it.
    pub fn expired(&self, now: i64) -> bool {
        now > self.expires
    }

    /// Held by a process of this host that no longer runs.
    pub fn holder_is_gone(&self) -> bool {
        self.host == super::host_name() && process_start(self.pid) != Some(self.pid_start)
    }
}

/// Start time of process `pid`, or None if it does not exist.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses
    let after = &stat[stat.rfind(')')? + 2..];
    // starttime is field 22 of the whole line, the 20th after comm
    after.split(' ').nth(19)?.parse().ok()
}

/// Unix time in milliseconds.
fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Every lock file: its name and content. A file that cannot be parsed is
/// reported as an error: an unreadable lock is never taken for no lock.
pub fn list(storage: &dyn Storage) -> Result<Vec<(String, LockInfo)>> {
    read_all(storage)?
        .into_iter()
        .map(|(name, info)| info.map(|i| (name, i)))
        .collect()
}

/// Every lock file: its name, and its content or why it cannot be read.
fn read_all(storage: &dyn Storage) -> Result<Vec<(String, Result<LockInfo>)>> {
    let mut out = Vec::new();
    for name in storage.list(LOCKS)? {
        if name.len() != 32 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = format!("{LOCKS}/{name}");
        let bytes = match storage.read(&path) {
            Ok(b) => b,
            // removed between the listing and the read: released
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let info = LockInfo::decode(&bytes).map_err(|e| {
            Error::corrupt(format!("lock file {path} {}", e.message()))
                .with_hint("if no coffre process is running, remove it with `coffre unlock --all`")
        });
        out.push((name, info));
    }
    Ok(out)
}

/// Remove the locks of processes of this host that are gone; returns them.
pub fn clear_dead(storage: &dyn Storage) -> Result<Vec<LockInfo>> {
    let mut cleared = Vec::new();
    for (name, info) in list(storage)? {
        if info.holder_is_gone() {
            remove(storage, &name)?;
            cleared.push(info);
        }
    }
    Ok(cleared)
}

fn remove(storage: &dyn Storage, name: &str) -> Result<()> {
    match storage.remove(&format!("{LOCKS}/{name}")) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove the stale locks (expired, or of a gone process of this host), or
/// with `all` every lock, readable or not; returns descriptions of what was
/// removed.
pub fn unlock(storage: &dyn Storage, all: bool) -> Result<Vec<String>> {
    let t = now();
    let mut removed = Vec::new();
    for (name, info) in read_all(storage)? {
        match info {
            Ok(info) if all || info.expired(t) || info.holder_is_gone() => {
                remove(storage, &name)?;
                removed.push(info.describe());
            }
            Ok(_) => {}
            // what the error about an unreadable lock tells the user to run
            Err(_) if all => {
                remove(storage, &name)?;
                removed.push(format!("the unreadable lock file {LOCKS}/{name}"));
            }
            // kept: nothing says whose it is; `list` names it
            Err(_) => {}
        }
    }
    Ok(removed)
}

struct Shared {
    storage: Arc<dyn Storage>,
    name: String,
    info: Mutex<LockInfo>,
    /// Set once the lease could not be renewed in time (or the file was
    /// removed): the holder must not commit anything.
    lost: AtomicBool,
    stop: (Mutex<bool>, Condvar),
}

impl Shared {
    fn path(&self) -> String {
        format!("{LOCKS}/{}", self.name)
    }

    /// Push the deadline forward, unless the lease already ran out: then
    /// someone may rightly have treated the lock as stale.
    fn renew(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(lease_lost());
        }
        let mut info = self.info.lock().unwrap();
        let t = now();
        // a margin for clocks of other hosts running slightly ahead
        let margin = lease_ms() / 10;
        let still_ours = match self.storage.read(&self.path()) {
            Ok(bytes) => LockInfo::decode(&bytes)
                .map(|i| i.pid == info.pid && i.created == info.created)
                .unwrap_or(false),
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if t + margin > info.expires || !still_ours {
            self.lost.store(true, Ordering::SeqCst);
            return Err(lease_lost());
        }
        info.expires = t + lease_ms();
        let bytes = serde_json::to_vec(&*info).expect("lock serializes");
        self.storage.write_atomic(&self.path(), &[&bytes])
    }
}

fn lease_lost() -> Error {
    Error::new(
        ErrorKind::Locked,
        "this process's repository lock ran out (it was suspended or could not refresh it), \
         so a prune may have removed data it wrote; nothing was committed",
    )
    .with_hint("run the command again")
}

/// A lock held on the repository; released when dropped.
pub struct RepoLock {
    shared: Arc<Shared>,
    refresher: Option<JoinHandle<()>>,
}

impl RepoLock {
    /// Take a shared or exclusive lock, waiting up to `wait` for
    /// conflicting locks to go.
    pub fn acquire(
        storage: Arc<dyn Storage>,
        exclusive: bool,
        command: &str,
        wait: Duration,
    ) -> Result<RepoLock> {
        let started = std::time::Instant::now();
        loop {
            for gone in clear_dead(storage.as_ref())? {
                eprintln!(
                    "note: removed the stale {} (that process is gone)",
                    gone.describe()
                );
            }
            let name = hex::encode(crate::crypto::random_array::<16>());
            let info = LockInfo {
                version: 1,
                exclusive,
                command: label::clean(command, label::MAX_LABEL),
                host: super::host_name(),
                user: super::user_name(),
                pid: std::process::id(),
                pid_start: process_start(std::process::id()).unwrap_or(0),
                created: super::now_rfc3339(),
                expires: now() + lease_ms(),
            };
            let bytes = serde_json::to_vec(&info).expect("lock serializes");
            let path = format!("{LOCKS}/{name}");
            storage.write_atomic(&path, &[&bytes])?;
            // written first, then looked around: of two processes racing,
            // the second to look sees the first
            let t = now();
            let conflicts: Vec<LockInfo> = list(storage.as_ref())?
                .into_iter()
                .filter(|(n, i)| {
                    *n != name && (exclusive || i.exclusive) && !i.expired(t) && !i.holder_is_gone()
                })
                .map(|(_, i)| i)
                .collect();
            if conflicts.is_empty() {
                if exclusive {
                    // expired locks of other hosts: their holders lost their
                    // leases and will not commit; remove them
                    for (n, i) in list(storage.as_ref())? {
                        if n != name && i.expired(t) {
                            remove(storage.as_ref(), &n)?;
                            eprintln!("note: removed the expired {}", i.describe());
                        }
                    }
                }
                let shared = Arc::new(Shared {
                    storage,
                    name,
                    info: Mutex::new(info),
                    lost: AtomicBool::new(false),
                    stop: (Mutex::new(false), Condvar::new()),
                });
                let refresher = spawn_refresher(shared.clone());
                return Ok(RepoLock {
                    shared,
                    refresher: Some(refresher),
                });
            }
            remove(storage.as_ref(), &name)?;
            if started.elapsed() >= wait {
                let who: Vec<String> = conflicts.iter().map(|c| c.describe()).collect();
                return Err(Error::new(
                    ErrorKind::Locked,
                    format!("the repository is locked: {}", who.join("; ")),
                )
                .with_hint(
                    "wait for it to finish (or pass --lock-wait 10m); if that process is gone, \
                     run `coffre unlock`",
                ));
            }
            // jitter, so that two processes backing off do not meet again
            let jitter = u64::from(crate::crypto::random_array::<1>()[0]) * 4;
            std::thread::sleep(Duration::from_millis(500 + jitter));
        }
    }

    /// Renew the lease now; an error if it was lost. Called right before a
    /// commit.
    pub fn check(&self) -> Result<()> {
        self.shared.renew()
    }

    pub fn is_exclusive(&self) -> bool {
        self.shared.info.lock().unwrap().exclusive
    }
}

fn spawn_refresher(shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let every = Duration::from_millis((lease_ms() / 5) as u64);
        let (stop, cv) = &shared.stop;
        let mut stopped = stop.lock().unwrap();
        while !*stopped {
            let (s, timeout) = cv.wait_timeout(stopped, every).unwrap();
            stopped = s;
            if !*stopped && timeout.timed_out() && shared.renew().is_err() {
                // lost: the holder finds out at its next check
                return;
            }
        }
    })
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        {
            let (stop, cv) = &self.shared.stop;
            *stop.lock().unwrap() = true;
            cv.notify_all();
        }
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        // a lost lease may have been taken over: only our own file goes
        if !self.shared.lost.load(Ordering::SeqCst) {
            let _ = remove(self.shared.storage.as_ref(), &self.shared.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LockInfo {
        LockInfo {
            version: 1,
            exclusive: true,
            command: "prune".into(),
            host: "db1".into(),
            user: "ops".into(),
            pid: 4242,
            pid_start: 81237,
            created: "2026-11-21T03:00:00.000000000Z".into(),
            expires: 1_795_230_600_000,
        }
    }

    fn decoded(info: &LockInfo) -> Result<LockInfo> {
        LockInfo::decode(&serde_json::to_vec(info).unwrap())
    }

    #[test]
    fn a_written_lock_decodes_and_planted_text_is_rejected_without_repeating_it() {
        let ok = decoded(&sample()).unwrap();
        assert_eq!(ok.describe(), sample().describe());
        let bad = |info: LockInfo, says: &str| {
            let e = decoded(&info).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt);
            assert!(e.message().contains(says), "{e}");
            assert!(!e.message().contains('\u{1b}'), "{e:?}");
        };
        let esc = "\u{1b}]0;pwned\u{7}";
        bad(
            LockInfo {
                command: format!("prune{esc}"),
                ..sample()
            },
            "its command holds a control character",
        );
        bad(
            LockInfo {
                host: format!("db1{esc}"),
                ..sample()
            },
            "its host holds a control character",
        );
        bad(
            LockInfo {
                user: "ops\u{9b}2J".into(),
                ..sample()
            },
            "its user holds a control character",
        );
        bad(
            LockInfo {
                created: format!("now{esc}"),
                ..sample()
            },
            "its creation time holds a control character",
        );
        bad(
            LockInfo {
                host: "h".repeat(300),
                ..sample()
            },
            "its host is 300 bytes",
        );
        bad(
            LockInfo {
                version: 2,
                ..sample()
            },
            "has version 2",
        );
        // serde names unknown fields: escaped, not repeated raw
        let planted = br#"{"version":1,"\u001b[2J":1}"#;
        let e = LockInfo::decode(planted).unwrap_err();
        assert!(e.message().contains("\\u{1b}[2J"), "{e}");
        assert!(!e.message().contains('\u{1b}'), "{e:?}");
        let e = LockInfo::decode(&vec![b' '; MAX_LEN + 1]).unwrap_err();
        assert!(e.message().contains("more than 4096"), "{e}");
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = std::process::id();
        let start = process_start(me).expect("our own start time");
        let mine = LockInfo {
            version: 1,
            exclusive: false,
            command: "test".into(),
            host: crate::repo::host_name(),
            user: "u".into(),
            pid: me,
            pid_start: start,
            created: "now".into(),
            expires: 0,
        };
        assert!(!mine.holder_is_gone());
        let reused = LockInfo {
            pid_start: start + 1,
            ..mine.clone()
        };
        assert!(reused.holder_is_gone());
        let elsewhere = LockInfo {
            host: "another-host".into(),
            pid_start: start + 1,
            ..mine
        };
        assert!(
            !elsewhere.holder_is_gone(),
            "other hosts' pids mean nothing here"
        );
    }
}
