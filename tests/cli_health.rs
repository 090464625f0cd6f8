//! `coffre health`: the exit code and metrics a monitoring system acts on.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

/// `health --json ARGS` (free space is not judged: the test machine's disk
/// is not the point); exit code and report.
fn health(r: &TestRepo, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["health", "--json", "--min-free", "0%"];
    a.extend_from_slice(args);
    let o = r.run(&a);
    let v: Value = serde_json::from_slice(&o.stdout).expect("health --json prints JSON");
    (o.status.code().unwrap(), v)
}

fn messages(v: &Value) -> String {
    v["findings"].to_string()
}

#[test]
fn a_fresh_scrubbed_repository_is_healthy_and_an_empty_one_is_not() {
    let r = TestRepo::small_chunks();
    let (code, v) = health(&r, &[]);
    assert_eq!(code, 2, "no snapshot at all is critical: {v}");
    r.backup_bytes("db", &random_bytes(500_000, 1), &[]);
    let (code, v) = health(&r, &[]);
    assert_eq!(code, 1, "never scrubbed: a warning: {v}");
    assert!(messages(&v).contains("scrub --subset"), "{v}");
    assert_ok(&r.run(&["scrub", "--all"]));
    let (code, v) = health(&r, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["series"][0]["names"], serde_json::json!(["db"]));
    assert_eq!(v["scrub"]["coverage"], 1.0);
}

#[test]
fn an_old_backup_is_critical_and_a_shrunken_one_a_warning() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(1 << 20, 1), &[]);
    r.backup_bytes("uploads", b"small\n", &[]);
    assert_ok(&r.run(&["scrub", "--all"]));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, v) = health(&r, &["--max-age", "1s"]);
    assert_eq!(code, 2, "{v}");
    let m = messages(&v);
    assert!(m.contains("db on ") && m.contains("uploads on "), "{v}");
    // --name narrows to one series
    let (code, v) = health(&r, &["--max-age", "1h", "--name", "db"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["series"].as_array().unwrap().len(), 1);

    // tonight's dump is a tenth of last night's: something went wrong
    r.backup_bytes("db", &random_bytes(100_000, 2), &[]);
    assert_ok(&r.run(&["scrub", "--all"]));
    let (code, v) = health(&r, &[]);
    assert_eq!(code, 1, "{v}");
    assert!(messages(&v).contains("below 50%"), "{v}");
    let (code, _) = health(&r, &["--min-size-ratio", "5%"]);
    assert_eq!(code, 0);
}

#[test]
fn a_damaged_pack_found_by_scrub_is_critical() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(1 << 20, 3), &[]);
    let pack = r.pack_files()[0].clone();
    let mut b = fs::read(&pack).unwrap();
    b[100] ^= 1;
    fs::write(&pack, b).unwrap();
    assert_code(&r.run(&["scrub", "--all"]), 14);
    let (code, v) = health(&r, &[]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["scrub"]["damaged_packs"], 1);
}

#[test]
fn prometheus_metrics_are_written_whole_and_say_the_same() {
    let r = TestRepo::small_chunks();
    let snap = r.backup_bytes("postgres/app", &random_bytes(300_000, 4), &[]);
    assert_ok(&r.run(&["scrub", "--all"]));
    let file = r.path("coffre.prom");
    fs::write(&file, "old content\n").unwrap();
    let (code, v) = health(&r, &["--prometheus", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    let text = fs::read_to_string(&file).unwrap();
    assert!(!text.contains("old content"));
    let sample = |name: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let when = v["series"][0]["newest_unix"].as_i64().unwrap();
    assert_eq!(
        sample("coffre_snapshot_last_success_timestamp_seconds{series=\"postgres/app\""),
        when.to_string()
    );
    assert_eq!(
        sample("coffre_snapshot_last_size_bytes{series=\"postgres/app\""),
        "300000"
    );
    assert_eq!(sample("coffre_health_status"), "0");
    assert_eq!(sample("coffre_scrub_damaged_packs"), "0");
    assert!(snap["snapshot"].is_string());
    // no temp file left beside it
    let leftovers: Vec<_> = fs::read_dir(file.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".coffre-health-")
        })
        .collect();
    assert!(leftovers.is_empty());
}
