//! A real PostgreSQL round trip: a throwaway cluster, `pg_dump` through
//! `coffre backup -- CMD`, `coffre restore --into -- pg_restore` into a new
//! database, and proof that both databases hold the same data.
//!
//! Needs the PostgreSQL server binaries (`apt-get install -y postgresql`);
//! without them the test fails and says so.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::servers::PgCluster;
use common::*;

const SCHEMA_AND_DATA: &str = r#"
CREATE TABLE users (
    id serial PRIMARY KEY,
    name text NOT NULL,
    bio text,
    created timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05.678901+00'
);
INSERT INTO users (name, bio)
SELECT 'user ' || g,
       CASE WHEN g % 10 = 0 THEN NULL
            ELSE repeat(E'émoji 🎉 日本語 Ωmega\ttab\nnewline \\ backslash ''quote'' ', g % 7) END
FROM generate_series(1, 3000) g;
CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
INSERT INTO blobs SELECT g, decode(md5(g::text) || md5((g * 7)::text), 'hex')
FROM generate_series(1, 500) g;
INSERT INTO blobs VALUES (1000, '\x00ff00fe0d0a'::bytea), (1001, ''::bytea), (1002, NULL);
INSERT INTO blobs SELECT 2000, string_agg(decode(md5(g::text), 'hex'), ''::bytea ORDER BY g)
FROM generate_series(1, 40000) g;
CREATE SEQUENCE invoice_no START 1000;
SELECT setval('invoice_no', 123456, true);
CREATE TABLE numbers (id int PRIMARY KEY, n numeric, f float8, j jsonb, a int[]);
INSERT INTO numbers VALUES
  (1, 3.14159265358979323846264338327950288, 'NaN', '{"k": [1, 2, {"x": null}]}', '{1,2,3}'),
  (2, -0.000001, '-Infinity', '"ünïcödé"', '{}'),
  (3, NULL, 1e300, NULL, NULL);
CREATE INDEX users_name ON users (name);
CREATE VIEW long_bios AS SELECT id, name FROM users WHERE length(bio) > 100;
"#;

/// Per-table checksums and sequence states: equal databases give equal text.
fn fingerprint(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "SELECT 'users', count(*), md5(string_agg(u::text, '|' ORDER BY id)) FROM users u
         UNION ALL SELECT 'blobs', count(*), md5(string_agg(b::text, '|' ORDER BY id)) FROM blobs b
         UNION ALL SELECT 'numbers', count(*), md5(string_agg(x::text, '|' ORDER BY id)) FROM numbers x
         UNION ALL SELECT 'invoice_no', last_value, is_called::text FROM invoice_no
         UNION ALL SELECT 'users_id_seq', last_value, is_called::text FROM users_id_seq
         UNION ALL SELECT 'long_bios', count(*), '' FROM long_bios",
    )
}

#[test]
fn postgres_dump_backup_and_restore_are_identical() {
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql("app", SCHEMA_AND_DATA);
    let original = fingerprint(&pg, "app");
    assert!(original.contains("users|3000|"), "{original}");
    assert!(original.contains("invoice_no|123456|true"), "{original}");

    let r = TestRepo::init(&["--chunk-size", "64", "--pack-size", "1"]);

    // custom format through `backup -- CMD`
    let mut args: Vec<std::ffi::OsString> = vec![
        "backup".into(),
        "-n".into(),
        "postgres/app".into(),
        "--json".into(),
        "--".into(),
        pg.tool("pg_dump").into_os_string(),
        "-Fc".into(),
        "--compress=0".into(),
    ];
    args.extend(pg.conn());
    args.push("app".into());
    let o = r.run(&args);
    assert_ok(&o);
    let j = parse_json_line(&o);
    assert!(u64_of(&j, "bytes_read") > 500_000, "{j}");
    let snaps = r.snapshots(&["--name", "postgres/app"]);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["entries"][0]["kind"], "stream");

    pg.psql("postgres", "CREATE DATABASE app_copy TEMPLATE template0");
    let mut args: Vec<std::ffi::OsString> = vec![
        "restore".into(),
        "--name".into(),
        "postgres/app".into(),
        "--into".into(),
        "--".into(),
        pg.tool("pg_restore").into_os_string(),
        "--exit-on-error".into(),
    ];
    args.extend(pg.conn());
    args.extend(["-d".into(), "app_copy".into()]);
    let o = r.run(&args);
    assert_ok(&o);

    assert_eq!(fingerprint(&pg, "app_copy"), original);
    assert_eq!(
        pg.dump_plain("app_copy", &["--data-only"]),
        pg.dump_plain("app", &["--data-only"]),
        "data-only dumps differ"
    );
    assert_eq!(
        pg.dump_plain("app_copy", &["--schema-only"]),
        pg.dump_plain("app", &["--schema-only"]),
        "schemas differ"
    );

    // a second dump of the unchanged database is almost all dedup
    let mut args: Vec<std::ffi::OsString> = vec![
        "backup".into(),
        "-n".into(),
        "postgres/app".into(),
        "--json".into(),
        "--".into(),
        pg.tool("pg_dump").into_os_string(),
        "-Fc".into(),
        "--compress=0".into(),
    ];
    args.extend(pg.conn());
    args.push("app".into());
    let o = r.run(&args);
    assert_ok(&o);
    let j2 = parse_json_line(&o);
    assert!(
        u64_of(&j2, "bytes_new") < u64_of(&j2, "bytes_read") / 4,
        "an unchanged database re-stored too much: {j2}"
    );

    // plain format: pg_dump | coffre backup --stdin, restore into psql
    let mut dump = Command::new(pg.tool("pg_dump"));
    dump.args(pg.conn())
        .arg("app")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dump = dump.spawn().unwrap();
    let mut c = r.cmd();
    c.args(["backup", "-n", "postgres/app-sql", "--stdin", "--json"])
        .stdin(Stdio::from(dump.stdout.take().unwrap()));
    let o = output_within(c, Duration::from_secs(120));
    let dump_status = dump.wait().unwrap();
    assert!(dump_status.success(), "pg_dump (plain) failed");
    assert_ok(&o);

    pg.psql("postgres", "CREATE DATABASE app_sql TEMPLATE template0");
    let mut args: Vec<std::ffi::OsString> = vec![
        "restore".into(),
        "--name".into(),
        "postgres/app-sql".into(),
        "--into".into(),
        "--".into(),
        pg.tool("psql").into_os_string(),
        "-X".into(),
        "-q".into(),
        "-v".into(),
        "ON_ERROR_STOP=1".into(),
    ];
    args.extend(pg.conn());
    args.extend(["-d".into(), "app_sql".into()]);
    let o = r.run(&args);
    assert_ok(&o);
    assert_eq!(fingerprint(&pg, "app_sql"), original);
    assert_eq!(
        pg.dump_plain("app_sql", &["--data-only"]),
        pg.dump_plain("app", &["--data-only"])
    );

    // a dump of a database that does not exist: no snapshot, exit 15
    let before = r.snapshot_ids();
    let mut args: Vec<std::ffi::OsString> = vec![
        "backup".into(),
        "-n".into(),
        "postgres/missing".into(),
        "--".into(),
        pg.tool("pg_dump").into_os_string(),
        "-Fc".into(),
    ];
    args.extend(pg.conn());
    args.push("no_such_db".into());
    let o = r.run(&args);
    assert_code(&o, 15);
    assert!(stderr_of(&o).contains("no snapshot"), "{}", stderr_of(&o));
    assert_eq!(r.snapshot_ids(), before);

    // restoring into a database that does not exist fails with exit 15
    let mut args: Vec<std::ffi::OsString> = vec![
        "restore".into(),
        "--name".into(),
        "postgres/app".into(),
        "--into".into(),
        "--".into(),
        pg.tool("pg_restore").into_os_string(),
        "--exit-on-error".into(),
    ];
    args.extend(pg.conn());
    args.extend(["-d".into(), "no_such_db".into()]);
    let o = r.run(&args);
    assert_code(&o, 15);
}
