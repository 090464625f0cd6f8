//! Throwaway database servers for the integration tests: a PostgreSQL
//! cluster, a MariaDB server and a Redis server, each in its own temp dir on
//! a free loopback port (and a Unix socket where the server has one), each
//! with a password that TCP clients must give, each stopped when dropped.
//! Remote-repository servers the same way: an OpenSSH sshd for SFTP (key
//! authentication, strict host key checking) and an S3 server (s3s-fs).
//! Plus fake `mongodump` / `mongorestore` tools (mongod is not packaged for
//! Debian 12) that check the stream contract coffre relies on.
//!
//! Passwords never go on a command line here either (SQL and server
//! configuration go through stdin and files), so that tests watching
//! `/proc/*/cmdline` for leaked passwords only see what coffre does. The one
//! exception is s3s-fs's secret key (see [`S3Server`]).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{output_within, stderr_of};

/// A free TCP port on 127.0.0.1 (the server binding it may still race with
/// another process; the servers below retry on another port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A distinctive string no other test (or process) uses: `PREFIX-<hex>`.
/// For passwords that a test then looks for in places they must not be.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let h = blake3::hash(format!("{t}/{}/{n}", std::process::id()).as_bytes());
    format!("{prefix}-{}", &h.to_hex()[..16])
}

/// Percent-encode everything but unreserved characters (for URL userinfo).
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[track_caller]
pub fn check(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Run `cmd` with `input` on its stdin (through a file: no pipe deadlock, and
/// the text stays off the command line).
fn with_stdin(mut cmd: Command, input: &str, limit: Duration) -> Output {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(input.as_bytes()).unwrap();
    use std::io::Seek;
    f.rewind().unwrap();
    cmd.stdin(Stdio::from(f));
    output_within(cmd, limit)
}

/// SIGKILL a child we started and reap it.
fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    // short paths: Unix socket paths must stay under 108 bytes
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap()
}

// ---------------------------------------------------------------- PostgreSQL

/// The newest installed PostgreSQL bin directory, preferring 15.
pub fn pg_bin_dir() -> PathBuf {
    let preferred = Path::new("/usr/lib/postgresql/15/bin");
    if preferred.join("initdb").exists() {
        return preferred.to_path_buf();
    }
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("initdb").exists() && b.join("pg_dump").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: \
             install postgresql (apt-get install -y postgresql) to run this test"
        )
    })
}

/// A running throwaway PostgreSQL cluster; stopped (immediately) on drop.
///
/// `pg_hba.conf`: `local all all trust` (the helpers below use the socket)
/// and `host all all 127.0.0.1/32 scram-sha-256`: TCP clients, i.e. coffre
/// given [`PgCluster::url`], need [`PgCluster::password`].
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub data: PathBuf,
    pub sock: PathBuf,
    pub port: u16,
    pub bin: PathBuf,
    /// The password of role `postgres` (TCP connections need it).
    pub password: String,
}

impl PgCluster {
    /// A cluster whose `postgres` role has a fresh distinctive password.
    pub fn start() -> PgCluster {
        Self::start_with_password(&unique("pg-pw"))
    }

    pub fn start_with_password(password: &str) -> PgCluster {
        let bin = pg_bin_dir();
        let dir = tempdir("coffre-pg-");
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        fs::create_dir(&sock).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .output()
            .unwrap();
        check(chown, "chown to postgres");
        let as_postgres = |prog: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(prog));
            c.stdin(Stdio::null());
            c
        };
        let mut c = as_postgres("initdb");
        c.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        check(output_within(c, Duration::from_secs(120)), "initdb");
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let mut cluster = PgCluster {
            dir,
            data,
            sock,
            port: 0,
            bin: bin.clone(),
            password: password.to_string(),
        };
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut c = as_postgres("pg_ctl");
            c.arg("-D")
                .arg(&cluster.data)
                .arg("-l")
                .arg(cluster.dir.path().join("server.log"))
                .arg("-w")
                .arg("-o")
                .arg(format!(
                    "-k {} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off \
                     -c password_encryption=scram-sha-256",
                    cluster.sock.display()
                ))
                .arg("start");
            let o = output_within(c, Duration::from_secs(120));
            if o.status.success() {
                cluster.port = port;
                break;
            }
            last = format!("{}\n{}", stderr_of(&o), cluster.log());
        }
        assert!(cluster.port != 0, "pg_ctl start failed: {last}");
        let lit = password.replace('\'', "''");
        cluster.psql(
            "postgres",
            &format!("ALTER ROLE postgres PASSWORD '{lit}';"),
        );
        cluster
    }

    /// `postgresql://postgres@127.0.0.1:PORT/DB` (TCP: needs the password).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// [`Self::url`] with the password in it (percent-encoded).
    pub fn url_with_password(&self, db: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{db}",
            pct(&self.password),
            self.port
        )
    }

    pub fn tool(&self, prog: &str) -> PathBuf {
        self.bin.join(prog)
    }

    /// Connection arguments for the client tools (the socket, trusted).
    pub fn conn(&self) -> Vec<OsString> {
        vec![
            "-h".into(),
            self.sock.clone().into_os_string(),
            "-p".into(),
            self.port.to_string().into(),
            "-U".into(),
            "postgres".into(),
        ]
    }

    /// Run SQL (any number of statements, given on stdin) in `db` over the
    /// socket; returns stdout (unaligned, tuples only). Panics on an error.
    #[track_caller]
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut c = Command::new(self.tool("psql"));
        c.args(self.conn())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db]);
        let o = check(
            with_stdin(c, sql, Duration::from_secs(120)),
            &format!("psql {sql:?}"),
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// `pg_dump` plain output of `db` with ARGS, without the random
    /// `\restrict` keys that differ between runs.
    pub fn dump_plain(&self, db: &str, args: &[&str]) -> String {
        let mut c = Command::new(self.tool("pg_dump"));
        c.args(self.conn()).args(args).arg(db).stdin(Stdio::null());
        let o = check(output_within(c, Duration::from_secs(120)), "pg_dump");
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port == 0 {
            return;
        }
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ------------------------------------------------------------------- MariaDB

/// A running throwaway MariaDB server (mariadbd as a child of the test);
/// killed and reaped on drop.
///
/// `root@localhost` (the socket, used by [`MariaDb::sql`]) has no password;
/// the server runs with `--skip-name-resolve`, so TCP clients are
/// `root@127.0.0.1`, which needs [`MariaDb::password`].
pub struct MariaDb {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub sock: PathBuf,
    pub port: u16,
    pub password: String,
}

impl MariaDb {
    pub fn start() -> MariaDb {
        Self::start_with_password(&unique("mariadb-pw"))
    }

    pub fn start_with_password(password: &str) -> MariaDb {
        Self::start_opts(password, false)
    }

    /// A server writing a binary log (mysql-bin.*) in its data directory.
    pub fn start_with_binlog() -> MariaDb {
        Self::start_opts(&unique("mariadb-pw"), true)
    }

    /// The data directory (binary logs are there).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start_opts(password: &str, binlog: bool) -> MariaDb {
        for tool in ["mariadb-install-db", "mariadbd", "mariadb", "mariadb-admin"] {
            require(tool, "mariadb-server");
        }
        let dir = tempdir("coffre-my-");
        let data = dir.path().join("data");
        let sock = dir.path().join("mysqld.sock");
        // a temp directory of its own: servers started at once (tests run in
        // parallel) once failed to bootstrap over each other's temp tables in /tmp
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let mut c = Command::new("mariadb-install-db");
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .stdin(Stdio::null());
        check(
            output_within(c, Duration::from_secs(120)),
            "mariadb-install-db (apt-get install -y mariadb-server)",
        );
        let mut db = MariaDb {
            dir,
            child: None,
            sock,
            port: 0,
            password: password.to_string(),
        };
        let log = db.dir.path().join("server.log");
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(which("mariadbd"))
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", tmp.display()))
                .arg(format!("--socket={}", db.sock.display()))
                .arg(format!("--port={port}"))
                .arg(if binlog {
                    "--log-bin=mysql-bin"
                } else {
                    "--skip-log-bin"
                })
                .args([
                    "--bind-address=127.0.0.1",
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=32M",
                    "--user=root",
                ])
                .arg(format!("--log-error={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run mariadbd (apt-get install -y mariadb-server)");
            db.child = Some(child);
            let start = Instant::now();
            let up = loop {
                if db.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                    break false; // exited: port taken?
                }
                let ping = Command::new("mariadb-admin")
                    .arg("--no-defaults")
                    .arg(format!("--socket={}", db.sock.display()))
                    .args(["-uroot", "ping"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                if ping.success() {
                    break true;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    panic!("mariadbd not ready after 60 s:\n{}", db.log());
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if up {
                db.port = port;
                break;
            }
            kill_child(db.child.as_mut().unwrap());
            db.child = None;
        }
        assert!(db.port != 0, "mariadbd did not start:\n{}", db.log());
        let lit = password.replace('\\', "\\\\").replace('\'', "\\'");
        // TCP clients authenticate as root@127.0.0.1; no other remote root
        let others = db.sql(
            "",
            "SELECT host FROM mysql.user WHERE user = 'root' \
             AND host NOT IN ('localhost', '127.0.0.1')",
        );
        let mut sql = String::new();
        for h in others.lines().filter(|h| !h.is_empty()) {
            sql += &format!("DROP USER 'root'@'{h}';\n");
        }
        sql +=
            &format!("ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{lit}';\nFLUSH PRIVILEGES;\n");
        db.sql("", &sql);
        db
    }

    /// `mysql://root@127.0.0.1:PORT/DB` (TCP: needs the password).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// [`Self::url`] with the password in it (percent-encoded).
    pub fn url_with_password(&self, db: &str) -> String {
        format!(
            "mysql://root:{}@127.0.0.1:{}/{db}",
            pct(&self.password),
            self.port
        )
    }

    /// A `mariadb` client on the socket as root (no password), batch mode.
    pub fn client(&self, db: &str) -> Command {
        let mut c = Command::new("mariadb");
        c.arg("--no-defaults")
            .arg(format!("--socket={}", self.sock.display()))
            .args(["-uroot", "-N", "-B"]);
        if !db.is_empty() {
            c.arg(db);
        }
        c
    }

    /// Run SQL (on stdin) in `db` (`""`: none); tab-separated rows on stdout.
    #[track_caller]
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let o = check(
            with_stdin(self.client(db), sql, Duration::from_secs(120)),
            &format!("mariadb {sql:?}"),
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill_child(c);
        }
    }
}

// --------------------------------------------------------------------- Redis

/// A running throwaway Redis (redis-server as a child of the test, settings
/// in a config file); killed and reaped on drop.
pub struct Redis {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    pub password: Option<String>,
}

impl Redis {
    /// `--repl-diskless-sync no`, delay 0: `redis-cli --rdb` gets exact RDBs
    /// at once. With a password, clients must `AUTH` (requirepass).
    pub fn start(password: Option<&str>) -> Redis {
        Self::start_with(password, false)
    }

    /// `diskless`: keep Redis's default `repl-diskless-sync yes` (a server
    /// you do not control: `redis-cli --rdb` then appends a 40-byte EOF mark).
    pub fn start_with(password: Option<&str>, diskless: bool) -> Redis {
        Self::launch(password, diskless, None)
    }

    /// A Redis that loads `rdb` (its `dump.rdb`) at start: to check what a
    /// backup stored, or to restore into.
    pub fn start_from_rdb(password: Option<&str>, rdb: &[u8]) -> Redis {
        Self::launch(password, false, Some(rdb))
    }

    /// A Redis that allows `DEBUG` from loopback clients
    /// (`enable-debug-command local`): a restore can make it load a new RDB
    /// with `DEBUG RELOAD NOSAVE` instead of stopping it.
    pub fn start_debuggable(password: Option<&str>) -> Redis {
        Self::launch_with(password, false, None, "enable-debug-command local\n")
    }

    fn launch(password: Option<&str>, diskless: bool, rdb: Option<&[u8]>) -> Redis {
        Self::launch_with(password, diskless, rdb, "")
    }

    /// `extra_conf`: more lines for redis.conf.
    fn launch_with(
        password: Option<&str>,
        diskless: bool,
        rdb: Option<&[u8]>,
        extra_conf: &str,
    ) -> Redis {
        require("redis-server", "redis-server");
        require("redis-cli", "redis-tools");
        let dir = tempdir("coffre-redis-");
        if let Some(rdb) = rdb {
            fs::write(dir.path().join("dump.rdb"), rdb).unwrap();
        }
        let mut r = Redis {
            dir,
            child: None,
            port: 0,
            password: password.map(str::to_string),
        };
        for _ in 0..5 {
            let port = free_port();
            let mut conf = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\ndbfilename dump.rdb\nsave \"\"\nappendonly no\n\
                 repl-diskless-sync {}\nrepl-diskless-sync-delay 0\nlogfile {}\n",
                r.dir.path().display(),
                if diskless { "yes" } else { "no" },
                r.dir.path().join("server.log").display()
            );
            if let Some(pw) = password {
                assert!(
                    !pw.contains(['"', '\\', '\n']),
                    "keep Redis test passwords simple"
                );
                conf += &format!("requirepass \"{pw}\"\n");
            }
            conf += extra_conf;
            let conf_path = r.dir.path().join("redis.conf");
            fs::write(&conf_path, conf).unwrap();
            fs::set_permissions(&conf_path, fs::Permissions::from_mode(0o600)).unwrap();
            let child = Command::new("redis-server")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run redis-server (apt-get install -y redis-server)");
            r.child = Some(child);
            r.port = port;
            let start = Instant::now();
            let up = loop {
                if r.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                    break false;
                }
                let mut c = r.cli_cmd();
                c.arg("PING");
                let o = c.stdin(Stdio::null()).output().unwrap();
                if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "PONG" {
                    break true;
                }
                if start.elapsed() > Duration::from_secs(30) {
                    panic!("redis-server not ready after 30 s:\n{}", r.log());
                }
                std::thread::sleep(Duration::from_millis(25));
            };
            if up {
                return r;
            }
            kill_child(r.child.as_mut().unwrap());
            r.child = None;
            r.port = 0;
        }
        panic!("redis-server did not start:\n{}", r.log());
    }

    /// `redis://127.0.0.1:PORT` (no password).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT` (percent-encoded).
    pub fn url_with_password(&self) -> String {
        let pw = self.password.as_deref().expect("a Redis with a password");
        format!("redis://:{}@127.0.0.1:{}", pct(pw), self.port)
    }

    /// redis-cli for this server; the password goes in REDISCLI_AUTH.
    pub fn cli_cmd(&self) -> Command {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        c.env_remove("REDISCLI_AUTH");
        if let Some(pw) = &self.password {
            c.env("REDISCLI_AUTH", pw);
        }
        c
    }

    /// `redis-cli ARGS`; returns stdout. Panics if redis-cli fails or the
    /// reply is an error.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> String {
        let mut c = self.cli_cmd();
        c.args(args).stdin(Stdio::null());
        let o = check(
            output_within(c, Duration::from_secs(60)),
            &format!("redis-cli {args:?}"),
        );
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            !out.starts_with("ERR") && !out.starts_with("NOAUTH") && !out.starts_with("WRONGPASS"),
            "redis-cli {args:?}: {out}"
        );
        out
    }

    /// Feed Redis commands (one per line, redis-cli syntax) through stdin:
    /// for loading many keys at once.
    #[track_caller]
    pub fn pipe(&self, commands: &str) -> String {
        let o = check(
            with_stdin(self.cli_cmd(), commands, Duration::from_secs(120)),
            "redis-cli (commands on stdin)",
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill_child(c);
        }
    }
}

// ------------------------------------------------------- readiness (children)

/// How a child server's start went.
enum Startup {
    Up,
    /// The child exited (typically: the port was taken meanwhile).
    Exited,
}

/// Wait until `log` contains `needle` while `child` is still running.
/// Panics, showing the log, when neither happens within `limit`.
fn wait_for_log(
    child: &mut Child,
    log: &Path,
    needle: &str,
    what: &str,
    limit: Duration,
) -> Startup {
    let start = Instant::now();
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if child.try_wait().unwrap().is_some() {
            return Startup::Exited;
        }
        if text.contains(needle) {
            return Startup::Up;
        }
        if start.elapsed() > limit {
            kill_child(child);
            panic!(
                "{what} not ready after {limit:?} (no {needle:?} in its log):\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start a server on a free loopback port. `launch(port)` prepares the
/// command (and whatever files it needs) and names the log line that says
/// the server is ready; its output goes to `log`. A child that exits at
/// once (the port was taken meanwhile) is tried again on another port, up
/// to five times. Returns the running child and its port.
fn start_on_free_port(
    log: &Path,
    what: &str,
    limit: Duration,
    mut launch: impl FnMut(u16) -> (Command, String),
) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let (mut cmd, needle) = launch(port);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log_file(log))
            .stderr(log_file(log))
            .spawn()
            .unwrap_or_else(|e| panic!("run {what}: {e}"));
        match wait_for_log(&mut child, log, &needle, what, limit) {
            Startup::Up => return (child, port),
            Startup::Exited => kill_child(&mut child),
        }
    }
    panic!(
        "{what} did not start:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// An append-mode log file for a child's stdout/stderr.
fn log_file(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

// ---------------------------------------------------------------- OpenSSH sshd

/// The name of the user the tests run as (`id -un`).
pub fn current_user() -> String {
    let o = check(
        Command::new("id")
            .arg("-un")
            .stdin(Stdio::null())
            .output()
            .unwrap(),
        "id -un",
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A running throwaway OpenSSH server for SFTP (`sshd -D -e` as a child of
/// the test, running as the current user) on 127.0.0.1; killed and reaped on
/// drop.
///
/// Everything is in its temp dir: a fresh ed25519 host key, a fresh ed25519
/// client key pair without passphrase ([`Sshd::key_file`], the only key in
/// `authorized_keys`), a `known_hosts` holding the host key for
/// `[127.0.0.1]:PORT` ([`Sshd::known_hosts`]), the config and the log.
/// Password and keyboard-interactive logins are off; the SFTP subsystem is
/// `internal-sftp`, so an [`Sshd::url`] path is an absolute path of this
/// machine.
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    user: String,
}

impl Sshd {
    pub fn start() -> Sshd {
        require("sshd", "openssh-server");
        require("ssh-keygen", "openssh-client");
        // privilege separation directory; systemd-tmpfiles makes it elsewhere
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempdir("coffre-ssh-");
        for key in ["host_ed25519", "id_ed25519"] {
            let mut c = Command::new("ssh-keygen");
            c.args(["-q", "-t", "ed25519", "-N", "", "-C", "coffre-test", "-f"])
                .arg(dir.path().join(key))
                .stdin(Stdio::null());
            check(output_within(c, Duration::from_secs(60)), "ssh-keygen");
        }
        fs::copy(
            dir.path().join("id_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        fs::create_dir(dir.path().join("xdg")).unwrap();
        let mut s = Sshd {
            dir,
            child: None,
            port: 0,
            user: current_user(),
        };
        let d = s.dir.path().to_path_buf();
        let host_pub = fs::read_to_string(d.join("host_ed25519.pub")).unwrap();
        // "ssh-ed25519 AAAA… comment": known_hosts wants the first two fields
        let host_key = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let log = d.join("server.log");
        let sshd = which("sshd"); // sshd re-executes itself: an absolute path
        let (child, port) = start_on_free_port(&log, "sshd", Duration::from_secs(20), |port| {
            let conf = format!(
                "Port {port}\nListenAddress 127.0.0.1\nAddressFamily inet\n\
                 HostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 UsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\n\
                 MaxStartups 100\nMaxSessions 100\nLogLevel INFO\n\
                 Subsystem sftp internal-sftp\n",
                d = d.display()
            );
            fs::write(d.join("sshd_config"), conf).unwrap();
            fs::write(
                d.join("known_hosts"),
                format!("[127.0.0.1]:{port} {host_key}\n"),
            )
            .unwrap();
            let mut c = Command::new(&sshd);
            c.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
            (c, format!("Server listening on 127.0.0.1 port {port}."))
        });
        s.child = Some(child);
        s.port = port;
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user: the current user.
    pub fn user(&self) -> String {
        self.user.clone()
    }

    /// The client's private key (ed25519, no passphrase, mode 0600).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// A known_hosts file with this server's host key for `[127.0.0.1]:PORT`
    /// (use with `StrictHostKeyChecking=yes`).
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// `sftp://USER@127.0.0.1:PORT/ABS_PATH` (no percent-encoding: keep
    /// test paths plain).
    pub fn url(&self, path: &Path) -> String {
        assert!(path.is_absolute(), "{} is not absolute", path.display());
        let p = path.to_str().expect("UTF-8 path");
        format!("sftp://{}@127.0.0.1:{}{p}", self.user, self.port)
    }

    /// Environment for a client process: `XDG_STATE_HOME` is a short
    /// directory (the ssh control socket goes there, and a Unix socket path
    /// must stay under 108 bytes).
    pub fn ssh_env(&self) -> Vec<(String, String)> {
        let xdg = self.dir.path().join("xdg");
        vec![(
            "XDG_STATE_HOME".to_string(),
            xdg.to_str().unwrap().to_string(),
        )]
    }

    /// Options for `ssh` / `sftp` / `scp` (not the port: `ssh -p`, but
    /// `sftp -P`): no user config, this key only, the pre-filled known_hosts
    /// checked strictly, batch mode.
    pub fn ssh_opts(&self) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.key_file().to_str().unwrap().into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
        ]
    }

    /// The server log so far (`sshd -e`: connections, auth failures).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill_child(c);
        }
    }
}

// ------------------------------------------------------------------- s3s-fs

/// The s3s-fs binary, on PATH or in ~/.cargo/bin.
pub fn s3s_fs_bin() -> PathBuf {
    if let Some(p) = find_tool("s3s-fs") {
        return p;
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    let p = Path::new(&home).join(".cargo/bin/s3s-fs");
    if p.is_file() {
        return p;
    }
    panic!(
        "s3s-fs not found (on PATH or in ~/.cargo/bin): install it with \
         `cargo install s3s-fs --version 0.14.1 --features binary --locked` \
         (about 4 minutes; tests/run.sh does it) to run this test"
    )
}

/// A running throwaway S3 server: s3s-fs, a real S3 protocol implementation
/// (SigV4 auth, path-style requests only, `If-None-Match: *` honoured) that
/// keeps objects as plain files. A child of the test; killed and reaped on
/// drop. One bucket, [`S3Server::bucket`] (`coffre-test`), exists at start.
///
/// On disk ([`S3Server::data_dir`], the server's root): a bucket is a
/// directory `DATA/BUCKET`, and object KEY of it is the file
/// `DATA/BUCKET/KEY`, each `/` in KEY a directory level
/// ([`S3Server::object_path`]); listing walks those directories, so any file
/// there is an object, and deleting a file deletes the object. s3s-fs also
/// keeps sidecars at the top of DATA, `.bucket-B64(BUCKET).object-B64(KEY)`
/// `.internal.json` (ETag, i.e. the MD5 at PUT time, and checksums) and
/// `.metadata.json` (B64: URL-safe base64 without padding). A GET returns
/// the stored ETag: after a test rewrites an object file, the server still
/// sends the old ETag (the bytes are the new ones).
///
/// The secret key is on s3s-fs's command line (it has no other way to take
/// it): a test that scans `/proc/*/cmdline` for it must skip
/// [`S3Server::pid`].
pub struct S3Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    bucket: String,
    access_key: String,
    secret_key: String,
}

impl S3Server {
    pub fn start() -> S3Server {
        let bin = s3s_fs_bin();
        let dir = tempdir("coffre-s3-");
        let data = dir.path().join("data");
        let bucket = "coffre-test".to_string();
        // s3s-fs's CreateBucket is exactly this mkdir
        fs::create_dir_all(data.join(&bucket)).unwrap();
        let hex = |s: &str| blake3::hash(unique(s).as_bytes()).to_hex().to_string();
        let mut s = S3Server {
            dir,
            child: None,
            port: 0,
            bucket,
            access_key: format!("CFT{}", hex("ak")[..17].to_uppercase()),
            secret_key: hex("sk")[..40].to_string(),
        };
        let log = s.dir.path().join("server.log");
        let (child, port) = start_on_free_port(&log, "s3s-fs", Duration::from_secs(20), |port| {
            let mut c = Command::new(&bin);
            c.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", &s.access_key])
                .args(["--secret-key", &s.secret_key])
                .arg(&data)
                .env("RUST_LOG", "info");
            (c, format!("server is running at http://127.0.0.1:{port}"))
        });
        s.child = Some(child);
        s.port = port;
        s
    }

    /// `http://127.0.0.1:PORT` (path-style: `ENDPOINT/BUCKET/KEY`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The server's root: bucket B is the directory `data_dir()/B`, object
    /// KEY of it the file `data_dir()/B/KEY` (see [`S3Server`]).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where object `key` of [`Self::bucket`] lives on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.data_dir().join(&self.bucket).join(key)
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION=us-east-1`,
    /// `AWS_ENDPOINT_URL` for a client process.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
        ]
    }

    /// The s3s-fs process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The server log so far (RUST_LOG=info).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill_child(c);
        }
    }
}

// ------------------------------------------------------------- fake MongoDB

/// The first bytes of a mongodump archive (magic 0x8199e26d, little-endian).
pub const MONGO_ARCHIVE_MAGIC: [u8; 4] = [0x6d, 0xe2, 0x99, 0x81];

/// How the fake tools behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeMongoMode {
    /// A complete archive (magic + payload), exit 0.
    Good,
    /// The archive magic and part of the payload, then exit 1 (a connection
    /// lost mid-dump); mongorestore reads part of its input and exits 1.
    FailMidway,
    /// Exit 0 after printing something that is not an archive.
    NoMagic,
}

/// Fake `mongodump` / `mongorestore` shell scripts in a temp bin directory
/// (name it as `bin-dir` in a plan). Both check the contract coffre must
/// keep: argv contains `--archive` and `--config=FILE` (mongodump also
/// `--numParallelCollections=1`, never `--gzip`), the password is nowhere in
/// argv, FILE is a 0600 YAML file whose `uri:` holds no password and whose
/// `password:` is the expected one. A broken contract is exit 2 with a
/// `fake mongo…: …` line on stderr.
///
/// mongodump writes [`MONGO_ARCHIVE_MAGIC`] + [`FakeMongo::payload`];
/// mongorestore stores what it read in [`FakeMongo::restored`]. Each records
/// its argv ([`FakeMongo::argv`]).
pub struct FakeMongo {
    dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub password: String,
    pub payload: Vec<u8>,
}

const FAKE_COMMON: &str = r#"#!/bin/sh
# A fake MongoDB tool for coffre's tests: checks the contract, see
# tests/common/servers.rs (FakeMongo).
set -u
D="$(dirname "$0")/.."
TOOL="$(basename "$0")"
fail() { echo "fake $TOOL: $*" >&2; exit 2; }
if [ "$#" -eq 1 ] && [ "$1" = "--version" ]; then
  echo "$TOOL version: 100.9.4-fake"
  exit 0
fi
printf '%s\n' "$@" > "$D/$TOOL.argv"
if grep -qF -f "$D/password" "$D/$TOOL.argv"; then fail "the password is on the command line"; fi
cfg=""; archive=0; par=0
for a in "$@"; do
  case "$a" in
    --config=*) cfg="${a#--config=}" ;;
    --archive) archive=1 ;;
    --numParallelCollections=1) par=1 ;;
    --gzip) fail "--gzip defeats deduplication" ;;
    --password*|-p) fail "a password option on the command line" ;;
  esac
done
[ "$archive" = 1 ] || fail "no --archive (to stdout/stdin)"
[ -n "$cfg" ] || fail "no --config=FILE"
[ -f "$cfg" ] || fail "the --config file $cfg does not exist"
mode="$(stat -c %a "$cfg")"
[ "$mode" = 600 ] || fail "the --config file has mode $mode, not 600"
uri="$(sed -n 's/^uri:[[:space:]]*//p' "$cfg" | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/")"
[ -n "$uri" ] || fail "no uri: in the --config file"
case "$uri" in mongodb://*|mongodb+srv://*) ;; *) fail "uri $uri is not a MongoDB URI" ;; esac
if printf '%s\n' "$uri" | grep -qF -f "$D/password"; then fail "the uri in the --config file holds the password"; fi
pw="$(sed -n 's/^password:[[:space:]]*//p' "$cfg" | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/")"
[ "$pw" = "$(cat "$D/password")" ] || fail "the password in the --config file is not the expected one"
MODE="$(cat "$D/mode")"
"#;

const FAKE_MONGODUMP: &str = r#"
[ "$par" = 1 ] || fail "no --numParallelCollections=1 (parallel dumps do not deduplicate)"
sleep 0.2
case "$MODE" in
  good)
    printf '\155\342\231\201'
    cat "$D/payload"
    ;;
  fail)
    printf '\155\342\231\201'
    head -c 1000000 "$D/payload"
    echo "Failed: error writing data for collection app.orders: connection reset by peer" >&2
    exit 1
    ;;
  nomagic)
    echo "this is not an archive"
    ;;
esac
exit 0
"#;

const FAKE_MONGORESTORE: &str = r#"
case "$MODE" in
  good)
    cat > "$D/restored.archive"
    ;;
  *)
    head -c 1000 > "$D/restored.archive"
    echo "Failed: restore error: connection reset by peer" >&2
    exit 1
    ;;
esac
magic="$(head -c 4 "$D/restored.archive" | od -An -tx1 | tr -d ' \n')"
[ "$magic" = 6de29981 ] || fail "stdin is not an archive (starts with $magic)"
exit 0
"#;

impl FakeMongo {
    /// Fake tools expecting `password` (keep it free of quotes, backslashes
    /// and newlines: the fake reads the YAML with sed).
    pub fn new(mode: FakeMongoMode, password: &str) -> FakeMongo {
        assert!(
            !password.contains(['"', '\'', '\\', '\n']) && !password.is_empty(),
            "keep fake MongoDB passwords simple"
        );
        let dir = tempdir("coffre-mongo-");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fs::write(dir.path().join("password"), password).unwrap();
        let mode_name = match mode {
            FakeMongoMode::Good => "good",
            FakeMongoMode::FailMidway => "fail",
            FakeMongoMode::NoMagic => "nomagic",
        };
        fs::write(dir.path().join("mode"), mode_name).unwrap();
        // 2 MiB: half random, half text, so that it spans several chunks
        let mut payload = super::random_bytes(1 << 20, 0x6d09);
        for i in 0..(1 << 20) / 64 {
            payload.extend_from_slice(
                format!("{{\"_id\": {i:>10}, \"order\": \"o-{i:>12}\"}}    \n").as_bytes(),
            );
        }
        fs::write(dir.path().join("payload"), &payload).unwrap();
        for (tool, body) in [
            ("mongodump", FAKE_MONGODUMP),
            ("mongorestore", FAKE_MONGORESTORE),
        ] {
            let p = bin.join(tool);
            fs::write(&p, format!("{FAKE_COMMON}{body}")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeMongo {
            dir,
            bin,
            password: password.to_string(),
            payload,
        }
    }

    /// What a good mongodump writes: the magic, then the payload.
    pub fn archive(&self) -> Vec<u8> {
        let mut v = MONGO_ARCHIVE_MAGIC.to_vec();
        v.extend_from_slice(&self.payload);
        v
    }

    /// The argv `tool` was last called with (one argument a line), if any.
    pub fn argv(&self, tool: &str) -> Option<Vec<String>> {
        fs::read_to_string(self.dir.path().join(format!("{tool}.argv")))
            .ok()
            .map(|s| s.lines().map(str::to_string).collect())
    }

    /// What the fake mongorestore read from its stdin.
    pub fn restored(&self) -> Option<Vec<u8>> {
        fs::read(self.dir.path().join("restored.archive")).ok()
    }
}

// ------------------------------------------------------- logging tool wrappers

/// A bin directory of wrapper scripts (name it as `bin-dir` in a plan): each
/// appends the argv it was called with to a log, then `exec`s the real tool.
/// A deterministic record of every tool coffre ran and how, where watching
/// `/proc` could miss a short-lived process.
pub struct LoggingBin {
    dir: tempfile::TempDir,
    pub bin: PathBuf,
}

impl LoggingBin {
    /// Wrappers named like the real tools at `tools` (absolute paths).
    pub fn new(tools: &[PathBuf]) -> LoggingBin {
        let dir = tempdir("coffre-wrap-");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let log = dir.path().join("argv.log");
        for real in tools {
            assert!(real.is_file(), "{} is not installed", real.display());
            let name = real.file_name().unwrap().to_str().unwrap();
            let script = format!(
                "#!/bin/sh\n{{ printf '%s' {name}; for a in \"$@\"; do printf ' %s' \"$a\"; done; \
                 printf '\\n'; }} >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            );
            let p = bin.join(name);
            fs::write(&p, script).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        LoggingBin { dir, bin }
    }

    /// One line per call: the tool's name and its arguments, space-separated.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("argv.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The calls of tool `name`.
    pub fn calls_of(&self, name: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|l| l.split(' ').next() == Some(name))
            .collect()
    }
}

/// The absolute path of `name` on PATH (or in /usr/sbin, /sbin).
pub fn which(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("{name} is not on PATH"))
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

/// Fail the test at once, saying what to install, when `tool` is missing.
fn require(tool: &str, package: &str) {
    if find_tool(tool).is_none() {
        panic!(
            "{tool} not found: install {package} (apt-get install -y {package}) to run this test"
        );
    }
}

// ---------------------------------------------------------------- Azurite

/// The well-known development account of Azure's storage emulators (public
/// by design: it only opens local emulators).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service (Microsoft's Azure Storage emulator, from npm) on
/// a free loopback port, its data in a temp dir, with a container
/// `coffre-test` made through the Azure SDK for Python. Its files on disk
/// are its own extents, not one file per blob.
pub struct Azurite {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl Azurite {
    pub fn start() -> Azurite {
        require("azurite-blob", "azurite (npm install -g azurite@3)");
        let dir = tempdir("coffre-az-");
        let mut s = Azurite {
            dir,
            child: None,
            port: 0,
        };
        let d = s.dir.path().to_path_buf();
        let log = d.join("server.log");
        let (child, port) = start_on_free_port(&log, "azurite", Duration::from_secs(30), |port| {
            let mut c = Command::new("azurite-blob");
            c.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(d.join("data"))
                .args(["--skipApiVersionCheck", "--disableTelemetry"]);
            (
                c,
                format!("successfully listens on http://127.0.0.1:{port}"),
            )
        });
        s.child = Some(child);
        s.port = port;
        s.create_container("coffre-test");
        s
    }

    fn create_container(&self, name: &str) {
        let script = format!(
            "from azure.storage.blob import BlobServiceClient\n\
             BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;\
             AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={}')\
             .create_container('{name}')\n",
            self.endpoint()
        );
        let mut c = Command::new("python3");
        c.arg("-c").arg(script).stdin(Stdio::null());
        check(
            output_within(c, Duration::from_secs(60)),
            "creating a container (pip install azure-storage-blob)",
        );
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    pub fn container(&self) -> &str {
        "coffre-test"
    }

    /// Where Azurite keeps its data (blob contents in its extent files).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_ACCOUNT_NAME".into(), AZURITE_ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY".into(), AZURITE_KEY.into()),
            ("AZURE_STORAGE_ENDPOINT".into(), self.endpoint()),
        ]
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill_child(c);
        }
    }
}
