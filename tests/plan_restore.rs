//! `coffre restore` through a plan (`--config coffre.toml`), against real
//! servers and files the tests create: PostgreSQL (custom, plain and
//! directory dumps; beside-and-swap, `--replace`, `--jobs`, `--table`),
//! MariaDB, Redis, SQLite and files. Each test backs up, changes the data,
//! restores the first snapshot and proves the target holds exactly what was
//! backed up; that a restore needing confirmation is refused without
//! `--yes`, that `--dry-run` changes nothing (and fails on a damaged pack),
//! and that the safety snapshot taken before a destructive restore gives
//! back what the restore replaced.
//!
//! Needs postgresql, mariadb-server, redis-server (`tests/run.sh` installs
//! them); the servers run in temp dirs on free loopback ports.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::servers::{MariaDb, PgCluster, Redis, check};
use common::*;
use serde_json::Value;

// ------------------------------------------------------------------ helpers

/// A repository, a plan file naming it (path and password file) and its
/// sources, and scratch space beside them.
struct PlanEnv {
    repo: TestRepo,
    plan: PathBuf,
}

impl PlanEnv {
    /// A fresh repository; the plan names it but has no sources yet.
    fn new() -> PlanEnv {
        let repo = TestRepo::small_chunks();
        let plan = repo.path("coffre.toml");
        let env = PlanEnv { repo, plan };
        env.set_sources("");
        env
    }

    /// (Re)write the plan with these `[[source]]` tables.
    fn set_sources(&self, sources: &str) {
        let pw = secret_file(&self.path("repo.pass"), PASSWORD);
        fs::write(
            &self.plan,
            format!(
                "[repository]\npath = {}\npassword-file = {}\n\n{sources}",
                lit(&self.repo.repo),
                lit(&pw)
            ),
        )
        .unwrap();
    }

    /// A 0600 file in the scratch area holding `secret`.
    fn secret(&self, name: &str, secret: &str) -> PathBuf {
        secret_file(&self.path(name), secret)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.repo.path(rel)
    }

    /// `coffre --config PLAN ARGS` with nothing else in the environment
    /// (repository and password come from the plan), stdin null: not a
    /// terminal, so nothing can be confirmed interactively.
    fn coffre(&self, args: &[&str]) -> Output {
        let mut c = bare_cmd();
        c.arg("--config").arg(&self.plan).args(args);
        output_within(c, Duration::from_secs(300))
    }

    /// `backup --json` of every source; the new snapshot's full id.
    #[track_caller]
    fn backup(&self) -> String {
        let o = self.coffre(&["backup", "--json"]);
        assert_ok(&o);
        let v = parse_json_line(&o);
        v["snapshot"].as_str().expect("snapshot id").to_string()
    }

    /// `restore SNAP --only NAME EXTRA…`
    fn restore(&self, snap: &str, only: &str, extra: &[&str]) -> Output {
        let mut a = vec!["restore", snap, "--only", only];
        a.extend_from_slice(extra);
        self.coffre(&a)
    }

    /// `snapshots --json ARGS`, oldest first.
    #[track_caller]
    fn snapshots(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["snapshots", "--json"];
        a.extend_from_slice(args);
        let o = self.coffre(&a);
        assert_ok(&o);
        serde_json::from_slice::<Value>(&o.stdout)
            .expect("snapshots --json is JSON")
            .as_array()
            .expect("an array")
            .clone()
    }

    fn snapshot_count(&self) -> usize {
        self.snapshots(&[]).len()
    }

    /// The safety snapshots (tag pre-restore), oldest first.
    fn pre_restore(&self) -> Vec<Value> {
        self.snapshots(&["--tag", "pre-restore"])
    }
}

fn entry_names(snap: &Value) -> Vec<String> {
    let mut v: Vec<String> = snap["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn id_of(snap: &Value) -> String {
    snap["id"].as_str().unwrap().to_string()
}

/// A restore that needs confirmation, run without `--yes` and without a
/// terminal: refused with exit 2, saying why and what to do.
#[track_caller]
fn assert_refused(o: &Output) {
    assert_code(o, 2);
    let err = stderr_of(o);
    assert!(
        err.contains("not confirmed") && err.contains("--yes"),
        "the refusal should say it was not confirmed and name --yes:\n{err}"
    );
}

/// A `--dry-run`: exit 0, the plan shown, every chunk read.
#[track_caller]
fn assert_dry_run_ok(o: &Output) {
    assert_ok(o);
    let err = stderr_of(o);
    assert!(
        err.contains("restore plan")
            && err.contains("dry run")
            && err.contains("nothing was changed"),
        "a dry run shows the plan and says nothing changed:\n{err}"
    );
}

// --------------------------------------------------------------- PostgreSQL

/// Several tables (one referencing another), indexes (one on an
/// expression), a view, a plpgsql function and the trigger calling it, a
/// standalone sequence, a CHECK, non-ASCII text everywhere. Deterministic:
/// no clock, no randomness.
const PG_SCHEMA: &str = r#"
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    city text,
    balance numeric(12,2) NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX customers_lower_name ON customers (lower(name));
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    item text NOT NULL,
    qty int NOT NULL CHECK (qty > 0),
    note text
);
CREATE INDEX orders_customer ON orders (customer_id, item);
CREATE TABLE audit (id serial PRIMARY KEY, what text NOT NULL);
CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit (what) VALUES ('order ' || NEW.id || ' × ' || NEW.qty || ' « ' || NEW.item || ' »');
    RETURN NEW;
END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION log_order();
CREATE VIEW customer_totals AS
    SELECT c.name, count(o.id) AS orders, coalesce(sum(o.qty), 0) AS qty
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.name;
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
CREATE INDEX notes_body ON notes (body);

INSERT INTO customers (name, city, balance) VALUES
    ('Zoë Müller', 'Zürich', 12.50),
    ('山田太郎', '東京', 0),
    ('Ólafur Þórsson', 'Reykjavík', 99.99),
    ('Ελένη Παπαδοπούλου', 'Αθήνα', -3.10),
    ('🐘 fan', 'Ærøskøbing', 1000000.01);
INSERT INTO orders (customer_id, item, qty, note)
    SELECT 1 + g % 5, 'widget-' || g, 1 + g % 9,
           CASE WHEN g % 4 = 0 THEN NULL ELSE repeat('crème brûlée ☕ ', 1 + g % 5) END
    FROM generate_series(1, 4000) g;
INSERT INTO notes SELECT g, 'note ' || g || ' — ünïcödé ' || md5(g::text) FROM generate_series(1, 600) g;
SELECT nextval('invoice_no') FROM generate_series(1, 3);
"#;

/// Deletes, inserts (firing the trigger), updates, a new column, a new
/// table, a sequence step: state 1 → state 2, the same every time it is
/// applied to state 1 (the sequences are part of the state).
const PG_CHANGES: &str = r#"
DELETE FROM orders WHERE id % 3 = 0;
INSERT INTO orders (customer_id, item, qty, note)
    SELECT 1 + g % 5, 'gadget-' || g, 1 + g % 4, 'neu ✓' FROM generate_series(1, 700) g;
UPDATE customers SET city = 'Genève', balance = balance + 1 WHERE id = 1;
ALTER TABLE customers ADD COLUMN email text DEFAULT 'x@example.org';
DELETE FROM notes WHERE id > 250;
UPDATE notes SET body = upper(body) WHERE id % 2 = 0;
SELECT nextval('invoice_no');
CREATE TABLE extra (x int PRIMARY KEY);
INSERT INTO extra VALUES (1), (2);
"#;

/// Rows of every table of `db` (schema public), by name.
fn pg_counts(pg: &PgCluster, db: &str) -> BTreeMap<String, u64> {
    let tables = pg.psql(
        db,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1;",
    );
    let mut out = BTreeMap::new();
    for t in tables.lines().filter(|l| !l.is_empty()) {
        let n = pg.psql(db, &format!("SELECT count(*) FROM public.\"{t}\";"));
        out.insert(t.to_string(), n.trim().parse().unwrap());
    }
    out
}

/// The whole database as SQL (schema, data, sequence positions), owners
/// left out, the rows of each table sorted (a restore writes them in dump
/// order, not in the order updates and deletes had left them on disk).
fn pg_state(pg: &PgCluster, db: &str) -> String {
    sorted_copy_blocks(&pg.dump_plain(db, &["--no-owner"]))
}

/// `pg_dump` plain output with the data lines of every `COPY … FROM stdin;`
/// block sorted.
fn sorted_copy_blocks(dump: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut rows: Option<Vec<&str>> = None;
    for l in dump.lines() {
        match rows.as_mut() {
            Some(r) if l == "\\." => {
                r.sort_unstable();
                out.append(r);
                out.push(l);
                rows = None;
            }
            Some(r) => r.push(l),
            None => {
                out.push(l);
                if l.starts_with("COPY ") && l.ends_with(" FROM stdin;") {
                    rows = Some(Vec::new());
                }
            }
        }
    }
    assert!(rows.is_none(), "a COPY block without its end in the dump");
    out.join("\n")
}

/// Names of the databases of the cluster, sorted.
fn pg_databases(pg: &PgCluster) -> Vec<String> {
    pg.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1;",
    )
    .lines()
    .filter(|l| !l.is_empty())
    .map(str::to_string)
    .collect()
}

/// The first line where two dumps differ, for readable failures.
fn first_diff(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: expected {x:?}\n got {y:?}", i + 1);
        }
    }
    format!(
        "one is a prefix of the other ({} and {} lines)",
        a.lines().count(),
        b.lines().count()
    )
}

#[track_caller]
fn assert_same_dump(what: &str, expected: &str, got: &str) {
    assert!(
        expected == got,
        "{what}: the database differs from the expected state: {}",
        first_diff(expected, got)
    );
}

/// A `[[source]]` for database `db` of `pg` with `format`.
fn pg_source(pg: &PgCluster, name: &str, db: &str, format: &str, pass: &Path) -> String {
    format!(
        "[[source]]\nname = '{name}'\nkind = 'postgres'\nurl = '{}'\npassword-file = {}\nformat = '{format}'\nbin-dir = {}\n\n",
        pg.url(db),
        lit(pass),
        lit(&pg.bin)
    )
}

/// One database of `PG_SCHEMA` in `pg`.
fn pg_create(pg: &PgCluster, db: &str) {
    pg.psql("postgres", &format!("CREATE DATABASE {db};"));
    pg.psql(db, PG_SCHEMA);
}

/// Custom format (the default): refusal without --yes, --dry-run, the
/// default restore beside the live database and the swap (the old one
/// kept, connections disabled), the safety snapshot and its restore,
/// --replace, --jobs 2. Every restore of the first snapshot must give back
/// exactly the database as it was dumped.
#[test]
fn postgres_custom_restores_beside_replace_jobs_and_safety_snapshot() {
    let pg = PgCluster::start();
    pg_create(&pg, "app");
    let env = PlanEnv::new();
    let pass = env.secret("pg.pass", &pg.password);
    env.set_sources(&pg_source(&pg, "pg/app", "app", "custom", &pass));

    let state1 = pg_state(&pg, "app");
    let counts1 = pg_counts(&pg, "app");
    assert_eq!(counts1["orders"], 4000);
    assert_eq!(counts1["audit"], 4000, "the trigger ran");
    let snap1 = env.backup();
    pg.psql("app", PG_CHANGES);
    let state2 = pg_state(&pg, "app");
    let counts2 = pg_counts(&pg, "app");
    assert_ne!(state1, state2);
    let snap2 = env.backup();
    assert_ne!(snap1, snap2);
    let dbs = pg_databases(&pg);
    let nsnaps = env.snapshot_count();

    // not on a terminal, no --yes: refused before anything is touched
    let o = env.restore(&snap1, "pg/app", &[]);
    assert_refused(&o);
    assert!(
        stderr_of(&o).contains("exists: will be replaced"),
        "the plan says the database is replaced:\n{}",
        stderr_of(&o)
    );
    assert_same_dump("after a refused restore", &state2, &pg_state(&pg, "app"));
    assert_eq!(
        pg_databases(&pg),
        dbs,
        "a refused restore creates no database"
    );
    assert_eq!(env.snapshot_count(), nsnaps, "nor a safety snapshot");

    // --dry-run: the plan and a read of every chunk; nothing changes
    let o = env.restore(&snap1, "pg/app", &["--dry-run"]);
    assert_dry_run_ok(&o);
    assert_same_dump("after --dry-run", &state2, &pg_state(&pg, "app"));
    assert_eq!(pg_databases(&pg), dbs, "--dry-run creates no database");
    assert_eq!(env.snapshot_count(), nsnaps, "--dry-run takes no snapshot");

    // default: restore beside, compare counts, ANALYZE, swap names
    let o = env.restore(&snap1, "pg/app", &["--yes"]);
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains("row counts match"),
        "{}",
        stderr_of(&o)
    );
    assert_same_dump("beside-and-swap restore", &state1, &pg_state(&pg, "app"));
    assert_eq!(pg_counts(&pg, "app"), counts1);
    let analyzed = pg.psql(
        "app",
        "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NULL AND last_autoanalyze IS NULL;",
    );
    assert_eq!(analyzed.trim(), "0", "every table was analyzed");
    // the replaced database is kept, connections disabled, with the changed data
    let old: Vec<String> = pg_databases(&pg)
        .into_iter()
        .filter(|d| d.starts_with("app_coffre_old_"))
        .collect();
    assert_eq!(old.len(), 1, "one kept database: {:?}", pg_databases(&pg));
    assert_eq!(
        pg_databases(&pg).len(),
        dbs.len() + 1,
        "no half-restored twin left behind: {:?}",
        pg_databases(&pg)
    );
    let allow = pg.psql(
        "postgres",
        &format!(
            "SELECT datallowconn FROM pg_database WHERE datname = '{}';",
            old[0]
        ),
    );
    assert_eq!(allow.trim(), "f", "the kept database takes no connections");
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true;", old[0]),
    );
    assert_same_dump("the kept old database", &state2, &pg_state(&pg, &old[0]));
    assert_eq!(pg_counts(&pg, &old[0]), counts2);
    pg.psql("postgres", &format!("DROP DATABASE \"{}\";", old[0]));

    // the safety snapshot holds the replaced (changed) state; restoring it undoes the restore
    let safety = env.pre_restore();
    assert_eq!(safety.len(), 1, "one safety snapshot: {safety:?}");
    assert_eq!(entry_names(&safety[0]), vec!["pg/app".to_string()]);
    // `latest` is still the last real backup, not the safety snapshot
    let o = env.restore("latest", "pg/app", &["--dry-run"]);
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains(&snap2[..8]),
        "latest must pass over the pre-restore snapshot and pick {snap2}:\n{}",
        stderr_of(&o)
    );
    let o = env.restore(&id_of(&safety[0]), "pg/app", &["--yes"]);
    assert_ok(&o);
    assert_same_dump(
        "restore of the safety snapshot",
        &state2,
        &pg_state(&pg, "app"),
    );
    assert_eq!(pg_counts(&pg, "app"), counts2);

    // --replace: terminate, drop, recreate in place: no old database kept
    let before = pg_databases(&pg);
    let nsafety = env.pre_restore().len();
    let o = env.restore(&snap1, "pg/app", &["--yes", "--replace"]);
    assert_ok(&o);
    assert_same_dump("--replace restore", &state1, &pg_state(&pg, "app"));
    assert_eq!(pg_counts(&pg, "app"), counts1);
    assert_eq!(
        pg_databases(&pg),
        before,
        "--replace keeps no old database and leaves no twin"
    );
    assert_eq!(
        env.pre_restore().len(),
        nsafety + 1,
        "--replace takes a safety snapshot first"
    );

    // --jobs 2 (the archive materialised, pg_restore -j 2), beside again
    pg.psql("app", PG_CHANGES);
    assert_same_dump("the changes again", &state2, &pg_state(&pg, "app"));
    let o = env.restore(&snap1, "pg/app", &["--yes", "--jobs", "2"]);
    assert_ok(&o);
    assert_same_dump("--jobs 2 restore", &state1, &pg_state(&pg, "app"));
    assert_eq!(pg_counts(&pg, "app"), counts1);
}

/// Table notes of `db`: its rows (`data_only`) or its definition and rows.
fn pg_notes(pg: &PgCluster, db: &str, data_only: bool) -> String {
    let mut args = vec!["--no-owner", "-t", "notes"];
    if data_only {
        args.push("--data-only");
    }
    sorted_copy_blocks(&pg.dump_plain(db, &args))
}

/// Database app at state 1, backed up, then changed: the plan, the
/// snapshot and table notes at state 1 (definition and rows).
fn pg_table_setup(pg: &PgCluster) -> (PlanEnv, String, String) {
    pg_table_setup_as(pg, "custom")
}

fn pg_table_setup_as(pg: &PgCluster, format: &str) -> (PlanEnv, String, String) {
    pg_create(pg, "app");
    let env = PlanEnv::new();
    let pass = env.secret("pg.pass", &pg.password);
    env.set_sources(&pg_source(pg, "pg/app", "app", format, &pass));
    let notes1 = pg_notes(pg, "app", false);
    let snap1 = env.backup();
    pg.psql("app", PG_CHANGES);
    assert_ne!(pg_notes(pg, "app", false), notes1);
    (env, snap1, notes1)
}

/// `--table T` puts back that table's rows as they were in the snapshot and
/// leaves every other table as it is.
#[test]
fn postgres_table_restore_touches_only_that_table() {
    let pg = PgCluster::start();
    pg_create(&pg, "ref");
    let rows1 = pg_notes(&pg, "ref", true);
    let (env, snap1, _) = pg_table_setup(&pg);
    let counts2 = pg_counts(&pg, "app");
    let others =
        |pg: &PgCluster| sorted_copy_blocks(&pg.dump_plain("app", &["--no-owner", "-T", "notes"]));
    let others2 = others(&pg);

    let o = env.restore(&snap1, "pg/app", &["--yes", "--table", "notes"]);
    // BUG (src/adapters/postgres.rs `load`, through child::feed): with a
    // streamed custom archive, `pg_restore -t notes` exits 0 as soon as it
    // has read the data it needs (notes comes before orders in the archive);
    // coffre takes the closed pipe for a failure and exits 15 ("pg_restore
    // stopped reading before the end of the stream") although the table was
    // restored.
    assert_ok(&o);
    let mut want = counts2.clone();
    want.insert("notes".into(), 600);
    assert_eq!(pg_counts(&pg, "app"), want, "only notes changed");
    assert_same_dump("the rows of notes", &rows1, &pg_notes(&pg, "app", true));
    assert_same_dump("the other tables", &others2, &others(&pg));
}

/// The table `--table` restores keeps its definition as in the snapshot:
/// primary key and index included.
#[test]
fn postgres_table_restore_keeps_the_tables_keys_and_indexes() {
    let pg = PgCluster::start();
    let (env, snap1, notes1) = pg_table_setup(&pg);
    // streamed, then from a materialised archive (--jobs): `--clean` drops
    // the table with its primary key notes_pkey and its index notes_body,
    // and both must come back with it
    for extra in [vec![], vec!["--jobs", "2"]] {
        let mut args = vec!["--yes", "--table", "notes"];
        args.extend(&extra);
        let o = env.restore(&snap1, "pg/app", &args);
        assert_ok(&o);
        assert_same_dump(
            &format!("the restored table (definition, rows, primary key, index) {extra:?}"),
            &notes1,
            &pg_notes(&pg, "app", false),
        );
        pg.psql("app", "DELETE FROM notes WHERE id % 2 = 0;");
    }
}

/// A table restore that cannot drop the table (a view uses it) fails and
/// rolls back: the table keeps its rows, key and index.
#[test]
fn postgres_table_restore_blocked_by_a_view_changes_nothing() {
    let pg = PgCluster::start();
    let (env, snap1, _) = pg_table_setup(&pg);
    pg.psql("app", "CREATE VIEW notes_view AS SELECT * FROM notes;");
    let before = pg_notes(&pg, "app", false);
    let o = env.restore(&snap1, "pg/app", &["--yes", "--table", "notes"]);
    assert_eq!(o.status.code(), Some(15), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("notes_view"), "{}", stderr_of(&o));
    assert_same_dump("the table as it was", &before, &pg_notes(&pg, "app", false));
}

/// A directory-format dump restores one table the same way.
#[test]
fn postgres_table_restore_from_a_directory_dump() {
    let pg = PgCluster::start();
    let (env, snap1, notes1) = pg_table_setup_as(&pg, "directory");
    let o = env.restore(&snap1, "pg/app", &["--yes", "--table", "public.notes"]);
    assert_ok(&o);
    assert_same_dump("the restored table", &notes1, &pg_notes(&pg, "app", false));
    let o = env.restore(&snap1, "pg/app", &["--yes", "--table", "missing"]);
    assert_eq!(o.status.code(), Some(13), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("no table \"missing\""),
        "{}",
        stderr_of(&o)
    );
}

/// Plain (psql) and directory (pg_restore -Fd) dumps restore beside and swap
/// like custom ones, and give back the dumped database.
#[test]
fn postgres_plain_and_directory_formats_restore_exactly() {
    let pg = PgCluster::start();
    pg_create(&pg, "app_plain");
    pg_create(&pg, "app_dir");
    let env = PlanEnv::new();
    let pass = env.secret("pg.pass", &pg.password);
    env.set_sources(&format!(
        "{}{}",
        pg_source(&pg, "pg/plain", "app_plain", "plain", &pass),
        pg_source(&pg, "pg/dir", "app_dir", "directory", &pass)
    ));
    let mut state1 = BTreeMap::new();
    for db in ["app_plain", "app_dir"] {
        state1.insert(db, (pg_state(&pg, db), pg_counts(&pg, db)));
    }
    let snap1 = env.backup();
    for db in ["app_plain", "app_dir"] {
        pg.psql(db, PG_CHANGES);
        assert_ne!(pg_state(&pg, db), state1[db].0);
    }
    env.backup();

    for (name, db, extra) in [
        ("pg/plain", "app_plain", vec!["--yes"]),
        ("pg/dir", "app_dir", vec!["--yes", "--jobs", "2"]),
    ] {
        let o = env.restore(&snap1, name, &extra);
        assert_ok(&o);
        assert!(
            stderr_of(&o).contains("row counts match"),
            "{name}: {}",
            stderr_of(&o)
        );
        assert_same_dump(name, &state1[db].0, &pg_state(&pg, db));
        assert_eq!(pg_counts(&pg, db), state1[db].1, "{name}");
        assert!(
            pg_databases(&pg)
                .iter()
                .any(|d| d.starts_with(&format!("{db}_coffre_old_"))),
            "{name}: the replaced database is kept: {:?}",
            pg_databases(&pg)
        );
    }
}

/// Two restores one right after the other (a retry, a script restoring two
/// points in time to compare them) both succeed, and the live database
/// stays open to connections throughout.
#[test]
fn postgres_back_to_back_beside_restores_both_succeed() {
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE app;");
    pg.psql(
        "app",
        "CREATE TABLE t (x int PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    let env = PlanEnv::new();
    let pass = env.secret("pg.pass", &pg.password);
    env.set_sources(&pg_source(&pg, "pg/app", "app", "custom", &pass));
    let snap1 = env.backup();
    pg.psql("app", "INSERT INTO t VALUES (2);");
    let snap2 = env.backup();
    // start just after a second boundary: on this small database both
    // restores then usually fall within the same second
    let frac = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1020 - frac)));
    for (snap, want) in [(&snap1, "1"), (&snap2, "1,2")] {
        let o = env.restore(snap, "pg/app", &["--yes", "--no-safety-snapshot"]);
        // BUG (src/adapters/postgres.rs `restore`): the names of the twin
        // and of the kept database carry a stamp with one-second resolution
        // (%Y%m%d%H%M%S). The second restore within the same second fails at
        // the swap ("database app_coffre_old_<stamp> already exists") and
        // leaves the live database with ALLOW_CONNECTIONS false (an outage)
        // and its restored twin app_coffre_<stamp> behind; a third restore in
        // that second fails on the twin.
        assert_ok(&o);
        let allow = pg.psql(
            "postgres",
            "SELECT datallowconn FROM pg_database WHERE datname = 'app';",
        );
        assert_eq!(allow.trim(), "t", "the live database takes connections");
        let rows = pg.psql("app", "SELECT string_agg(x::text, ',' ORDER BY x) FROM t;");
        assert_eq!(rows.trim(), want);
        let twins: Vec<String> = pg_databases(&pg)
            .into_iter()
            .filter(|d| d.starts_with("app_coffre_") && !d.starts_with("app_coffre_old_"))
            .collect();
        assert!(twins.is_empty(), "no restored twin left behind: {twins:?}");
    }
}

// ------------------------------------------------------------------- SQLite

/// Everything a user sees of an SQLite database: the schema, and every row
/// of every table in rowid order; plus the integrity check.
fn sqlite_state(path: &Path) -> String {
    let c = rusqlite::Connection::open(path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "integrity check of {}", path.display());
    let mut out = String::new();
    let mut schema = c
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    let rows: Vec<(String, String, String)> = schema
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name, sql) in &rows {
        out += &format!("{kind} {name}: {sql}\n");
        if kind == "table" && !name.starts_with("sqlite_") {
            let mut q = c
                .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
                .unwrap();
            let n = q.column_count();
            let mut r = q.query([]).unwrap();
            while let Some(row) = r.next().unwrap() {
                let vals: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                out += &format!("  {}\n", vals.join(" | "));
            }
        }
    }
    out
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Restore without --to goes back to the plan's path: the rows of the
/// snapshot, the file's mode kept, the WAL of the replaced database gone
/// (replayed into the new file it would corrupt it). The safety snapshot,
/// taken while the application still had the database open in WAL mode,
/// holds the changes that were only in the WAL.
#[test]
fn sqlite_restore_goes_back_to_the_plan_path() {
    let env = PlanEnv::new();
    let dir = env.path("app");
    fs::create_dir(&dir).unwrap();
    let db = dir.join("app.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar BLOB);
             CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);
             CREATE INDEX posts_user ON posts(user_id);
             CREATE VIEW post_counts AS SELECT user_id, count(*) AS n FROM posts GROUP BY user_id;
             CREATE TRIGGER users_upper AFTER INSERT ON users BEGIN
                 UPDATE users SET name = name || ' ✓' WHERE id = NEW.id; END;
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
             INSERT INTO users (name, avatar) SELECT 'usér ' || i || ' 日本', randomblob(64) FROM g;
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 5000)
             INSERT INTO posts (user_id, body) SELECT 1 + i % 3000, hex(randomblob(40)) FROM g;",
        )
        .unwrap();
    }
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
    env.set_sources(&format!(
        "[[source]]\nname = 'sqlite/app'\nkind = 'sqlite'\npaths = [{}]\n",
        lit(&db)
    ));
    let state1 = sqlite_state(&db);
    let snap1 = env.backup();

    // the application keeps the database open; its last changes are in the WAL
    let live = rusqlite::Connection::open(&db).unwrap();
    live.execute_batch(
        "PRAGMA wal_autocheckpoint = 0;
         DELETE FROM posts WHERE id % 2 = 0;
         UPDATE users SET name = 'renamed' WHERE id < 100;
         INSERT INTO users (name) VALUES ('new ünïcödé');
         CREATE TABLE extra (x);",
    )
    .unwrap();
    let state2 = sqlite_state(&db);
    assert_ne!(state1, state2);
    let wal = with_suffix(&db, "-wal");
    assert!(wal.exists(), "the changes are in the WAL");
    env.backup();
    let files = |p: &Path| {
        (
            fs::read(p).unwrap(),
            fs::read(with_suffix(p, "-wal")).unwrap(),
        )
    };
    let bytes2 = files(&db);
    let nsnaps = env.snapshot_count();

    let o = env.restore(&snap1, "sqlite/app", &[]);
    assert_refused(&o);
    assert!(files(&db) == bytes2, "a refused restore changes nothing");
    let o = env.restore(&snap1, "sqlite/app", &["--dry-run"]);
    assert_dry_run_ok(&o);
    assert!(files(&db) == bytes2, "--dry-run changes nothing");
    assert_eq!(env.snapshot_count(), nsnaps);

    let o = env.restore(&snap1, "sqlite/app", &["--yes"]);
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains("row counts match"),
        "{}",
        stderr_of(&o)
    );
    for suffix in ["-wal", "-shm", "-journal"] {
        assert!(
            !with_suffix(&db, suffix).exists(),
            "{suffix} of the replaced database left beside the restored one"
        );
    }
    let mode = fs::metadata(&db).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o644,
        "the restored file keeps the mode of the old one"
    );
    let left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["app.db".to_string()], "no temp files left");
    assert_eq!(sqlite_state(&db), state1);
    drop(live);

    // the safety snapshot read the database through its WAL
    let safety = env.pre_restore();
    assert_eq!(safety.len(), 1, "{safety:?}");
    let undo = env.path("undo.db");
    let o = env.restore(
        &id_of(&safety[0]),
        "sqlite/app",
        &["--to", undo.to_str().unwrap()],
    );
    assert_ok(&o);
    assert_eq!(sqlite_state(&undo), state2);
}

// -------------------------------------------------------------------- files

/// A directory with nested files, an empty directory and a symlink, and a
/// single file beside it.
fn make_files(root: &Path) -> (PathBuf, PathBuf) {
    let site = root.join("site");
    fs::create_dir_all(site.join("a/b/c")).unwrap();
    fs::create_dir_all(site.join("empty")).unwrap();
    fs::write(site.join("index.html"), "<h1>Grüße</h1>\n").unwrap();
    fs::write(site.join("a/b/c/deep.txt"), "deep\n".repeat(1000)).unwrap();
    fs::write(site.join("a/big.bin"), random_bytes(700_000, 7)).unwrap();
    fs::write(site.join("a/b/日本語.txt"), "ünïcödé\n").unwrap();
    fs::set_permissions(
        site.join("a/b/日本語.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("a/big.bin", site.join("link")).unwrap();
    let env_file = root.join("app.env");
    fs::write(&env_file, "SECRET=1\n").unwrap();
    fs::set_permissions(&env_file, fs::Permissions::from_mode(0o640)).unwrap();
    (site, env_file)
}

/// `cp -a` (modes, owners, mtimes, symlinks).
fn copy_all(from: &Path, to: &Path) {
    let o = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    check(o, "cp -a");
}

/// Entries in `dir` whose names start with `prefix` (coffre's temp names).
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// A files source with a directory and a single file: `--only NAME --yes`
/// puts both back as they were (contents, names, modes, mtimes, symlinks),
/// and the safety snapshot puts back what the restore replaced.
#[test]
fn files_restore_puts_the_tree_and_the_file_back() {
    let env = PlanEnv::new();
    let root = env.path("srv");
    fs::create_dir(&root).unwrap();
    let (site, env_file) = make_files(&root);
    env.set_sources(&format!(
        "[[source]]\nname = 'www'\nkind = 'files'\npaths = [{}, {}]\n",
        lit(&site),
        lit(&env_file)
    ));
    let ref1 = env.path("ref1");
    fs::create_dir(&ref1).unwrap();
    copy_all(&site, &ref1);
    copy_all(&env_file, &ref1);
    let snap1 = env.backup();

    // change, add, delete, chmod; the single file rewritten
    std::thread::sleep(Duration::from_millis(20));
    fs::write(site.join("index.html"), "<h1>changed</h1>\n").unwrap();
    fs::remove_file(site.join("a/b/c/deep.txt")).unwrap();
    fs::remove_dir(site.join("empty")).unwrap();
    fs::write(site.join("a/new.txt"), "new\n").unwrap();
    let mut big = fs::read(site.join("a/big.bin")).unwrap();
    big[350_000] ^= 0xff;
    fs::write(site.join("a/big.bin"), big).unwrap();
    fs::set_permissions(site.join("index.html"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&env_file, "SECRET=2\nMORE=3\n").unwrap();
    let ref2 = env.path("ref2");
    fs::create_dir(&ref2).unwrap();
    copy_all(&site, &ref2);
    copy_all(&env_file, &ref2);
    assert!(!compare_trees(&ref1.join("site"), &site, CompareOpts::all()).is_empty());
    let snap2 = env.backup();
    let nsnaps = env.snapshot_count();
    let check_state = |reference: &Path, what: &str| {
        assert_trees_equal(&reference.join("site"), &site, CompareOpts::all());
        assert_trees_equal(&reference.join("app.env"), &env_file, CompareOpts::all());
        assert!(
            leftovers(&root).is_empty(),
            "{what}: {:?}",
            leftovers(&root)
        );
    };

    let o = env.restore(&snap1, "www", &[]);
    assert_refused(&o);
    check_state(&ref2, "after a refused restore");
    let o = env.restore(&snap1, "www", &["--dry-run"]);
    assert_dry_run_ok(&o);
    check_state(&ref2, "after --dry-run");
    assert_eq!(env.snapshot_count(), nsnaps);

    let o = env.restore(&snap1, "www", &["--yes"]);
    assert_ok(&o);
    check_state(&ref1, "after the restore");

    let safety = env.pre_restore();
    assert_eq!(safety.len(), 1, "{safety:?}");
    assert_eq!(
        entry_names(&safety[0]),
        vec!["www/app.env".to_string(), "www/site".to_string()]
    );
    // `latest` passes over the safety snapshot
    let o = env.restore("latest", "www", &["--dry-run"]);
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains(&snap2[..8]),
        "latest is {snap2}, not the safety snapshot:\n{}",
        stderr_of(&o)
    );
    for entry in ["www/site", "www/app.env"] {
        let o = env.restore(&id_of(&safety[0]), entry, &["--yes"]);
        assert_ok(&o);
    }
    check_state(&ref2, "after restoring the safety snapshot");
    // BUG (src/cli/restore.rs `restore_to` → adapters::backup with the
    // `safety` Source of adapters/target.rs `resolve`): the safety snapshot
    // of a files source with several paths records each entry as its own
    // source ("www/site", "www/app.env"), so the undo command coffre prints,
    // `coffre restore ID --only NAME`, fails with the source name the user
    // restored with (exit 13, "has no entry \"www\""); it should restore
    // both entries, like --only www does for the backup itself.
    let o = env.restore(&id_of(&safety[0]), "www", &["--dry-run"]);
    assert_ok(&o);
}

/// Flip one byte in the middle of the blobs of every pack: --dry-run must
/// find it (exit 14) and, like the real restore then, change nothing.
#[test]
fn a_damaged_pack_fails_the_dry_run_and_the_restore_changes_nothing() {
    let env = PlanEnv::new();
    let root = env.path("srv");
    fs::create_dir(&root).unwrap();
    let (site, _) = make_files(&root);
    env.set_sources(&format!(
        "[[source]]\nname = 'www'\nkind = 'files'\npaths = [{}]\n",
        lit(&site)
    ));
    let snap1 = env.backup();
    fs::write(site.join("index.html"), "<h1>changed</h1>\n").unwrap();
    fs::remove_file(site.join("a/big.bin")).unwrap();
    let reference = env.path("ref");
    fs::create_dir(&reference).unwrap();
    copy_all(&site, &reference);

    let packs = env.repo.pack_files();
    assert!(!packs.is_empty());
    for p in &packs {
        let mut b = fs::read(p).unwrap();
        let header_len = u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap()) as usize;
        let blobs = b.len() - 4 - header_len;
        b[blobs / 2] ^= 0x01;
        fs::write(p, b).unwrap();
    }
    let o = env.restore(&snap1, "www", &["--dry-run"]);
    assert_code(&o, 14);
    assert_trees_equal(&reference.join("site"), &site, CompareOpts::all());
    let o = env.restore(&snap1, "www", &["--yes"]);
    assert_code(&o, 14);
    assert_trees_equal(&reference.join("site"), &site, CompareOpts::all());
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}

// ------------------------------------------------------------------ MariaDB

const MY_SCHEMA: &str = r#"
SET NAMES utf8mb4;
CREATE TABLE products (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    price DECIMAL(10,2) NOT NULL,
    UNIQUE KEY products_name (name)
) ENGINE=InnoDB;
CREATE TABLE sales (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    product_id INT NOT NULL,
    qty INT NOT NULL,
    note TEXT,
    photo BLOB,
    KEY sales_qty (qty),
    CONSTRAINT sales_product FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE=InnoDB;
CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(200) NOT NULL) ENGINE=InnoDB;
CREATE TRIGGER sales_log AFTER INSERT ON sales FOR EACH ROW
    INSERT INTO log (msg) VALUES (CONCAT('sale ', NEW.id, ' × ', NEW.qty));
CREATE VIEW product_totals AS
    SELECT p.name, SUM(s.qty) AS qty FROM products p JOIN sales s ON s.product_id = p.id GROUP BY p.name;
DELIMITER //
CREATE PROCEDURE restock(IN n INT) BEGIN UPDATE products SET price = price + n; END //
DELIMITER ;
INSERT INTO products (name, price) VALUES ('Käse', 12.50), ('寿司', 30), ('Crème brûlée', 7.25), ('🍕 Pizza', 9.99);
INSERT INTO sales (product_id, qty, note, photo)
    SELECT 1 + seq % 4, 1 + seq % 7, CONCAT('note ', seq, ' — ünïcödé 🎉'), UNHEX(MD5(seq))
    FROM seq_1_to_3000;
"#;

const MY_CHANGES: &str = r#"
SET NAMES utf8mb4;
DELETE FROM sales WHERE id % 3 = 0;
INSERT INTO sales (product_id, qty, note) SELECT 1 + seq % 4, 2, 'neu' FROM seq_1_to_500;
UPDATE products SET name = 'Fromage' WHERE id = 1;
CALL restock(1);
ALTER TABLE products ADD COLUMN sku VARCHAR(20) DEFAULT 'x';
CREATE TABLE extra (x INT PRIMARY KEY);
INSERT INTO extra VALUES (1);
"#;

/// The database as `mariadb-dump` writes it (schema, rows in key order,
/// triggers, routines, events), its default character set and collation,
/// and the rows of each table.
fn my_state(my: &MariaDb, db: &str) -> (String, String, BTreeMap<String, u64>) {
    let mut c = Command::new("mariadb-dump");
    c.arg("--no-defaults")
        .arg(format!("--socket={}", my.sock.display()))
        .args([
            "-uroot",
            "--skip-dump-date",
            "--order-by-primary",
            "--hex-blob",
            "--routines",
            "--triggers",
            "--events",
            db,
        ])
        .stdin(Stdio::null());
    let dump =
        String::from_utf8(check(output_within(c, Duration::from_secs(120)), "mariadb-dump").stdout)
            .unwrap();
    let charset = my.sql(
        "",
        &format!(
            "SELECT default_character_set_name, default_collation_name \
             FROM information_schema.schemata WHERE schema_name = '{db}';"
        ),
    );
    let tables = my.sql(
        db,
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1;",
    );
    let mut counts = BTreeMap::new();
    for t in tables.lines().filter(|l| !l.is_empty()) {
        let n = my.sql(db, &format!("SELECT COUNT(*) FROM `{t}`;"));
        counts.insert(t.to_string(), n.trim().parse().unwrap());
    }
    (dump, charset, counts)
}

/// Back up, change, restore the first snapshot: the dump of the database
/// (tables, rows, trigger, view, procedure) and the row counts are those of
/// the backup; the safety snapshot gives back the changes; the database
/// keeps its character set and collation.
#[test]
fn mariadb_restore_gives_back_the_dumped_database() {
    let my = MariaDb::start();
    my.sql(
        "",
        "CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
    );
    my.sql("shop", MY_SCHEMA);
    let env = PlanEnv::new();
    let pass = env.secret("my.pass", &my.password);
    env.set_sources(&format!(
        "[[source]]\nname = 'mariadb/shop'\nkind = 'mariadb'\nurl = '{}'\npassword-file = {}\n",
        my.url("shop"),
        lit(&pass)
    ));
    let (dump1, charset1, counts1) = my_state(&my, "shop");
    assert_eq!(counts1["sales"], 3000);
    assert_eq!(counts1["log"], 3000, "the trigger ran");
    let snap1 = env.backup();
    my.sql("shop", MY_CHANGES);
    let (dump2, _, counts2) = my_state(&my, "shop");
    assert_ne!(dump1, dump2);
    env.backup();

    let o = env.restore(&snap1, "mariadb/shop", &[]);
    assert_refused(&o);
    assert_eq!(
        my_state(&my, "shop").0,
        dump2,
        "a refused restore changes nothing"
    );

    let o = env.restore(&snap1, "mariadb/shop", &["--yes"]);
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains("row counts match"),
        "{}",
        stderr_of(&o)
    );
    let (dump, charset, counts) = my_state(&my, "shop");
    assert_same_dump("mariadb restore", &dump1, &dump);
    assert_eq!(counts, counts1);
    let p = my.sql(
        "shop",
        "SET NAMES utf8mb4; SELECT name FROM products WHERE id = 4;",
    );
    assert_eq!(p.trim(), "🍕 Pizza", "4-byte UTF-8 survives");

    let safety = env.pre_restore();
    assert_eq!(safety.len(), 1, "{safety:?}");
    let o = env.restore(&id_of(&safety[0]), "mariadb/shop", &["--yes"]);
    assert_ok(&o);
    let (dump, _, counts) = my_state(&my, "shop");
    assert_same_dump("restore of the safety snapshot", &dump2, &dump);
    assert_eq!(counts, counts2);

    // DROP DATABASE + CREATE DATABASE must not fall back to the server's
    // default character set (latin1 here)
    assert_eq!(charset, charset1, "the database keeps its character set");
}

/// With a binary log on, the snapshot records the binlog position of its
/// dump: restoring the snapshot, then replaying the binlog from that
/// position, gives the database as it was later (point-in-time recovery).
#[test]
fn mariadb_binlog_position_recorded_at_backup_replays_to_the_later_state() {
    let my = MariaDb::start_with_binlog();
    my.sql(
        "",
        "CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
    );
    my.sql("shop", MY_SCHEMA);
    let env = PlanEnv::new();
    let pass = env.secret("my.pass", &my.password);
    env.set_sources(&format!(
        "[[source]]\nname = 'mariadb/shop'\nkind = 'mariadb'\nurl = '{}'\npassword-file = {}\n",
        my.url("shop"),
        lit(&pass)
    ));
    let snap1 = env.backup();
    let o = env.coffre(&["ls", "--json", &snap1]);
    assert_ok(&o);
    let entries: Value = serde_json::from_slice(&o.stdout).unwrap();
    let binlog = entries[0]["meta"]["binlog"]
        .as_str()
        .unwrap_or_else(|| panic!("no binlog position in {entries}"))
        .to_string();
    // MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=1234
    let file = binlog.split('\'').nth(1).expect("a file").to_string();
    let pos: u64 = binlog
        .rsplit('=')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("a position in {binlog:?}"));

    my.sql("shop", MY_CHANGES);
    let (dump2, _, counts2) = my_state(&my, "shop");
    let end = my.sql("", "SHOW MASTER STATUS;");
    let mut cols = end.split('\t');
    let (end_file, end_pos) = (cols.next().unwrap(), cols.next().unwrap().trim());
    assert_eq!(end_file, file, "no binlog rotation during the test");

    let o = env.restore(&snap1, "mariadb/shop", &["--yes"]);
    assert_ok(&o);
    assert_ne!(my_state(&my, "shop").0, dump2);
    let mut c = Command::new("mariadb-binlog");
    c.arg("--no-defaults")
        .arg(format!("--start-position={pos}"))
        .arg(format!("--stop-position={end_pos}"))
        .arg(my.data_dir().join(&file))
        .stdin(Stdio::null());
    let replay = check(output_within(c, Duration::from_secs(60)), "mariadb-binlog");
    my.sql("", &String::from_utf8(replay.stdout).unwrap());
    let (dump, _, counts) = my_state(&my, "shop");
    assert_eq!(counts, counts2);
    // the AUTO_INCREMENT counter is no data: bulk inserts reserve ranges,
    // and a replay may reserve fewer
    let no_counter = |d: &str| {
        d.lines()
            .map(|l| match l.find(" AUTO_INCREMENT=") {
                Some(i) => {
                    let rest = &l[i + 16..];
                    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
                    format!("{}{}", &l[..i], &rest[digits..])
                }
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_same_dump(
        "snapshot + binlog from its position",
        &no_counter(&dump2),
        &no_counter(&dump),
    );
}

// -------------------------------------------------------------------- Redis

/// Every key of databases 0 and 3 with its type and value (sets and hashes
/// sorted), and the key counts INFO keyspace reports for every database.
fn redis_state(r: &Redis) -> String {
    let mut out = String::new();
    for line in r.cli(&["INFO", "keyspace"]).lines() {
        // db0:keys=N,expires=M,avg_ttl=… (the average TTL moves with the clock)
        if let Some((db, rest)) = line.trim().split_once(':') {
            let kv: Vec<&str> = rest
                .split(',')
                .filter(|kv| !kv.starts_with("avg_ttl"))
                .collect();
            out += &format!("{db}: {}\n", kv.join(","));
        }
    }
    for db in ["0", "3"] {
        let mut keys: Vec<String> = r
            .cli(&["-n", db, "KEYS", "*"])
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        keys.sort();
        if keys.is_empty() {
            continue;
        }
        let script: String = std::iter::once(format!("SELECT {db}\n"))
            .chain(keys.iter().map(|k| format!("TYPE {k}\n")))
            .collect();
        let types: Vec<String> = r
            .pipe(&script)
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect();
        assert_eq!(types.len(), keys.len(), "one TYPE reply per key");
        let strings: Vec<&str> = keys
            .iter()
            .zip(&types)
            .filter(|(_, t)| *t == "string")
            .map(|(k, _)| k.as_str())
            .collect();
        let mut mget = vec!["-n", db, "MGET"];
        mget.extend(&strings);
        let values: Vec<String> = if strings.is_empty() {
            Vec::new()
        } else {
            r.cli(&mget).lines().map(str::to_string).collect()
        };
        assert_eq!(values.len(), strings.len());
        let mut values = values.into_iter();
        for (k, t) in keys.iter().zip(&types) {
            let v = match t.as_str() {
                "string" => values.next().unwrap(),
                "list" => r.cli(&["-n", db, "LRANGE", k, "0", "-1"]),
                "zset" => r.cli(&["-n", db, "ZRANGE", k, "0", "-1", "WITHSCORES"]),
                "stream" => r.cli(&["-n", db, "XRANGE", k, "-", "+"]),
                "set" => {
                    let mut m: Vec<String> = r
                        .cli(&["-n", db, "SMEMBERS", k])
                        .lines()
                        .map(str::to_string)
                        .collect();
                    m.sort();
                    m.join("\n")
                }
                "hash" => {
                    let flat = r.cli(&["-n", db, "HGETALL", k]);
                    let flat: Vec<&str> = flat.lines().collect();
                    let mut pairs: Vec<String> = flat.chunks(2).map(|p| p.join(" = ")).collect();
                    pairs.sort();
                    pairs.join("\n")
                }
                other => panic!("key {k} has unexpected type {other}"),
            };
            out += &format!("db{db} {k} ({t}): {}\n", v.trim_end());
        }
    }
    out
}

fn redis_run_id(r: &Redis) -> String {
    r.cli(&["INFO", "server"])
        .lines()
        .find_map(|l| l.trim().strip_prefix("run_id:").map(str::to_string))
        .expect("run_id in INFO server")
}

/// Keys of every type (and a TTL, and a second database) backed up,
/// changed, restored into the running server (DEBUG RELOAD NOSAVE): every
/// key and value is back, DBSIZE is equal, the server was not restarted, and
/// the safety snapshot gives the changes back.
#[test]
fn redis_restore_reloads_the_keys_into_the_running_server() {
    let pw = common::servers::unique("redis-pw");
    let r = Redis::start_debuggable(Some(&pw));
    let mut load = String::from(
        "SET greeting \"héllo wörld ☃\"\n\
         INCRBY counter 42\n\
         RPUSH queue a b c ü\n\
         HSET user:1 name Zoë city Zürich age 33\n\
         SADD tags red green blue 日本\n\
         ZADD scores 1.5 alice 2 bob -3 carol\n\
         XADD events 1-1 type signup user 1\n\
         XADD events 2-1 type login user 1\n\
         SET session abc EX 3600\n",
    );
    for i in 0..300 {
        load += &format!("SET k:{i} value-{i}-{}\n", "x".repeat(i % 50));
    }
    load += "SELECT 3\nSET other yes\nRPUSH other:list 1 2 3\n";
    r.pipe(&load);
    let env = PlanEnv::new();
    let pass = env.secret("redis.pass", &pw);
    env.set_sources(&format!(
        "[[source]]\nname = 'redis/cache'\nkind = 'redis'\nurl = '{}'\npassword-file = {}\n",
        r.url(),
        lit(&pass)
    ));
    let state1 = redis_state(&r);
    let sizes = |r: &Redis| (r.cli(&["-n", "0", "DBSIZE"]), r.cli(&["-n", "3", "DBSIZE"]));
    let sizes1 = sizes(&r);
    assert_eq!(sizes1.0.trim(), "308");
    let run_id = redis_run_id(&r);
    let snap1 = env.backup();

    let mut change = String::from(
        "DEL greeting\nSET counter 0\nRPUSH queue d\nHSET user:1 city Genève\nSREM tags red\n\
         ZADD scores 10 dave\nXADD events 3-1 type logout user 1\nSET newkey new\nPERSIST session\n",
    );
    for i in 0..100 {
        change += &format!("DEL k:{i}\n");
    }
    change += "SELECT 3\nFLUSHDB\nSET brandnew 1\n";
    r.pipe(&change);
    let state2 = redis_state(&r);
    assert_ne!(state1, state2);
    env.backup();

    let o = env.restore(&snap1, "redis/cache", &[]);
    assert_refused(&o);
    assert_eq!(redis_state(&r), state2, "a refused restore changes nothing");
    let o = env.restore(&snap1, "redis/cache", &["--dry-run"]);
    assert_dry_run_ok(&o);
    assert_eq!(redis_state(&r), state2, "--dry-run changes nothing");

    let o = env.restore(&snap1, "redis/cache", &["--yes"]);
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains("DEBUG RELOAD") && stderr_of(&o).contains("row counts match"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(redis_state(&r), state1, "every key is back");
    assert_eq!(sizes(&r), sizes1, "DBSIZE");
    let ttl: i64 = r.cli(&["TTL", "session"]).trim().parse().unwrap();
    assert!(
        ttl > 0 && ttl <= 3600,
        "the key keeps its expiry: TTL {ttl}"
    );
    assert_eq!(redis_run_id(&r), run_id, "reloaded, not restarted");

    let safety = env.pre_restore();
    assert_eq!(safety.len(), 1, "{safety:?}");
    let o = env.restore(&id_of(&safety[0]), "redis/cache", &["--yes"]);
    assert_ok(&o);
    assert_eq!(
        redis_state(&r),
        state2,
        "the safety snapshot held the changes"
    );
}
