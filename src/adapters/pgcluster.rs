//! A throwaway PostgreSQL cluster for restore drills: initdb into a temp
//! directory, a Unix socket, no TCP, fsync off; stopped and deleted on drop.
//! As root, the server runs as the `postgres` user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::child;
use crate::error::{Error, ErrorKind, Result};

pub struct ScratchCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

/// Where initdb lives: the plan's bin-dir, `pg_config --bindir`, or the
/// newest /usr/lib/postgresql/*/bin.
pub fn find_bin_dir(hint: Option<&Path>) -> Option<PathBuf> {
    if let Some(h) = hint.filter(|h| h.join("initdb").is_file()) {
        return Some(h.to_path_buf());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").is_file() {
            return Some(p);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::other(format!("finding a free port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| Error::other(e.to_string()))?
        .port())
}

impl ScratchCluster {
    pub fn start(bin_hint: Option<&Path>) -> Result<ScratchCluster> {
        let bin = find_bin_dir(bin_hint).ok_or_else(|| {
            Error::new(
                ErrorKind::CommandFailed,
                "no PostgreSQL server binaries (initdb) found for a throwaway cluster",
            )
            .with_hint("install postgresql, set bin-dir in the plan, or pass --to postgresql://… (a server for a scratch database)")
        })?;
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = super::scratch_dir("coffre-drill-pg-")?;
        let port = free_port()?;
        let c = ScratchCluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg("postgres:postgres").arg(c.dir.path());
            child::output(
                chown,
                "cannot give the drill directory to the postgres user",
            )?;
        }
        let data = c.dir.path().join("data");
        let mut initdb = c.cmd("initdb");
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        child::output(initdb, "initdb of the throwaway cluster failed")?;
        let mut ctl = c.cmd("pg_ctl");
        ctl.arg("-D")
            .arg(&data)
            .args(["-w", "-l"])
            .arg(c.dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-k {} -p {} -c listen_addresses='' -c fsync=off",
                c.dir.path().display(),
                port
            ));
        ctl.arg("start");
        child::output(ctl, "the throwaway cluster did not start")?;
        Ok(c)
    }

    fn cmd(&self, tool: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        }
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A URL for `database` over the cluster's socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql:///{database}?host={}&port={}&user=postgres",
            self.dir.path().display(),
            self.port
        )
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let mut ctl = self.cmd("pg_ctl");
        ctl.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = ctl.output();
    }
}
