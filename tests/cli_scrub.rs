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
