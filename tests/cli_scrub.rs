//! `coffre scrub --all`: proves every pack and blob can be read back, and names damage.

mod common;

use common::*;

#[test]
fn scrub_all_passes_on_a_healthy_repository_and_names_a_damaged_pack() {
    let repo = TestRepo::small_chunks();
    repo.backup_bytes("db", &random_bytes(600_000, 1), &[]);
    repo.backup_bytes("db2", &random_bytes(300_000, 2), &[]);
    let ok = repo.run(&["scrub", "--all", "--json"]);
    assert_ok(&ok);
    let v = parse_json_line(&ok);
    // chunk boundaries depend on the repository's secret seed, so the blob
    // count varies; the bytes read back must cover all 900 000 random bytes
    assert!(u64_of(&v, "blobs") >= 2, "{v}");
    assert!(u64_of(&v, "bytes") >= 900_000, "{v}");
    assert_eq!(v["damage"].as_array().unwrap().len(), 0);

    let pack = repo.pack_files().into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&pack, bytes).unwrap();
    let bad = repo.run(&["scrub", "--all"]);
    assert_code(&bad, 14);
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr_of(&bad).contains(&name),
        "stderr does not name pack {name}: {}",
        stderr_of(&bad)
    );
}

#[test]
fn scrub_names_a_blob_whose_pack_was_rewritten_with_a_matching_name() {
    // an attacker who renames a modified pack to its new hash: the file hash
    // passes, the blob's authentication does not
    let repo = TestRepo::small_chunks();
    repo.backup_bytes("db", &random_bytes(200_000, 3), &[]);
    let pack = repo.pack_files().into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[60] ^= 0x80;
    let new_name = blake3::hash(&bytes).to_hex().to_string();
    std::fs::remove_file(&pack).unwrap();
    let dir = pack
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(&new_name[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&new_name), bytes).unwrap();
    let bad = repo.run(&["scrub", "--all"]);
    assert_code(&bad, 14);
    assert!(
        stderr_of(&bad).contains("failed authentication"),
        "{}",
        stderr_of(&bad)
    );
}

#[test]
fn scrub_without_all_is_a_usage_error() {
    let repo = TestRepo::small_chunks();
    assert_code(&repo.run(&["scrub"]), 2);
}

/// (packs verified at least once, packs) from the index.
fn verified_packs(repo: &TestRepo) -> (u64, u64) {
    let c = rusqlite::Connection::open(repo.repo.join("index/index.sqlite")).unwrap();
    c.query_row("SELECT count(verified_ns), count(*) FROM packs", [], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
}

#[test]
fn a_nightly_subset_covers_every_pack_in_turn() {
    let repo = TestRepo::small_chunks();
    for i in 0..4 {
        repo.backup_bytes(&format!("db{i}"), &random_bytes(2 << 20, 10 + i), &[]);
    }
    let (done, total) = verified_packs(&repo);
    assert_eq!(done, 0);
    assert!(total >= 6, "enough packs to split: {total}");
    let per_run = total.div_ceil(3);
    for night in 1..=3u64 {
        let o = repo.run(&["scrub", "--subset", "1/3", "--json"]);
        assert_ok(&o);
        let v = parse_json_line(&o);
        assert_eq!(u64_of(&v, "packs"), per_run, "{v}");
        assert_eq!(u64_of(&v, "packs_total"), total);
        let (done, _) = verified_packs(&repo);
        assert_eq!(
            done,
            (per_run * night).min(total),
            "night {night}: the packs verified longest ago (never) go first"
        );
    }
    // a byte budget: at least one pack, the oldest-verified one
    let o = repo.run(&["scrub", "--max-bytes", "1", "--json"]);
    assert_ok(&o);
    let v = parse_json_line(&o);
    assert_eq!(u64_of(&v, "packs"), 1);
    assert_eq!(u64_of(&v, "packs_left"), total - 1);
    // shares and budgets are checked
    assert_code(&repo.run(&["scrub", "--subset", "0"]), 2);
    assert_code(&repo.run(&["scrub", "--subset", "3/2"]), 2);
    assert_code(&repo.run(&["scrub", "--max-duration", "soon"]), 2);
}

#[test]
fn damage_is_named_with_the_snapshot_entries_it_affects_and_recorded() {
    let repo = TestRepo::small_chunks();
    let a = repo.backup_bytes("a", &random_bytes(1 << 20, 21), &[])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let b = repo.backup_bytes("b", &random_bytes(1 << 20, 22), &[])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // a pack that only a's data is in: the one whose loss breaks a
    let pack = repo
        .pack_files()
        .into_iter()
        .find(|p| {
            let saved = std::fs::read(p).unwrap();
            std::fs::remove_file(p).unwrap();
            let broken = !repo.run(&["dump", &a, "--name", "a"]).status.success();
            std::fs::write(p, saved).unwrap();
            broken
        })
        .expect("a pack of a");
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[200] ^= 0x10;
    std::fs::write(&pack, bytes).unwrap();
    let o = repo.run(&["scrub", "--all", "--json"]);
    assert_code(&o, 14);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let all = v.to_string();
    assert!(all.contains(&format!("snapshot {a} entry a")), "{v}");
    assert!(!all.contains(&format!("snapshot {b} entry b")), "{v}");
    let c = rusqlite::Connection::open(repo.repo.join("index/index.sqlite")).unwrap();
    let failed: i64 = c
        .query_row("SELECT count(*) FROM packs WHERE verify_ok = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(failed, 1, "the damaged pack's result is recorded");
}
