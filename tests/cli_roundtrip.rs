//! Round trips through the `coffre` binary: streams and trees come back byte
//! for byte with their metadata, dedup stores nothing twice, the right
//! snapshot is chosen, keys and repository permissions behave.

mod common;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use filetime::FileTime;

const KIB: usize = 1024;
const MIB: u64 = 1 << 20;

/// Restore the stream entry `name` (latest) three ways and check each result
/// equals `expected`: `dump`, `restore --target FILE`, `restore --into -- sh`.
fn check_stream_three_ways(r: &TestRepo, name: &str, expected: &Path, tag: &str) {
    let dumped = r.path(&format!("{tag}.dump"));
    let o = r.run_stdout_to(&["dump", "--name", name], &dumped);
    assert_ok(&o);
    assert_same_file(expected, &dumped);
    fs::remove_file(&dumped).unwrap();

    let target = r.path(&format!("{tag}.restored"));
    let o = r.run(&[
        OsStr::new("restore"),
        OsStr::new("--name"),
        OsStr::new(name),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    assert_ok(&o);
    assert_same_file(expected, &target);
    fs::remove_file(&target).unwrap();

    let piped = r.path(&format!("{tag}.piped"));
    let o = r.run(&[
        OsStr::new("restore"),
        OsStr::new("--name"),
        OsStr::new(name),
        OsStr::new("--into"),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new("cat > \"$1\""),
        OsStr::new("sh"),
        piped.as_os_str(),
    ]);
    assert_ok(&o);
    assert_same_file(expected, &piped);
    fs::remove_file(&piped).unwrap();
}

#[test]
fn empty_stdin_makes_no_snapshot() {
    let r = TestRepo::small_chunks();
    let o = r.run_with_stdin(&["backup", "-n", "empty", "--stdin"], b"");
    assert_code(&o, 15);
    let err = stderr_of(&o);
    assert!(
        err.contains("empty"),
        "stderr should say the input is empty: {err}"
    );
    assert!(
        r.snapshots(&[]).is_empty(),
        "no snapshot for an empty input"
    );
    assert!(r.snapshot_files().is_empty());
}

#[test]
fn streams_at_chunk_boundaries_round_trip() {
    // --chunk-size 64: min 16 KiB, average 64 KiB, max 256 KiB
    let r = TestRepo::small_chunks();
    let sizes = [
        1usize,
        2,
        16 * KIB - 1,
        16 * KIB,
        16 * KIB + 1,
        64 * KIB - 1,
        64 * KIB,
        64 * KIB + 1,
        256 * KIB - 1,
        256 * KIB,
        256 * KIB + 1,
        512 * KIB,
        512 * KIB + 1,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let data = random_bytes(n, 1000 + i as u64);
        let src = r.path(&format!("in-{n}"));
        fs::write(&src, &data).unwrap();
        let name = format!("s/{n}");
        let o = r.run_with_stdin_file(&["backup", "-n", &name, "--stdin", "--json"], &src);
        assert_ok(&o);
        let j = parse_json_line(&o);
        assert_eq!(u64_of(&j, "bytes_read"), n as u64, "size {n}");
        assert_eq!(u64_of(&j, "warnings"), 0);
        check_stream_three_ways(&r, &name, &src, &format!("out-{n}"));
    }
    let snaps = r.snapshots(&[]);
    assert_eq!(snaps.len(), sizes.len());
    for (s, &n) in snaps.iter().zip(&sizes) {
        assert_eq!(s["entries"][0]["name"], format!("s/{n}"));
        assert_eq!(s["entries"][0]["kind"], "stream");
        assert_eq!(s["entries"][0]["size"], n as u64);
    }
}

#[test]
fn large_mixed_stream_round_trips() {
    // 16 KiB average chunks: > 4096 chunks, so chunk-list blobs are used
    let r = TestRepo::init(&["--chunk-size", "16", "--pack-size", "4"]);
    let n = 105 * MIB + 12_345;
    let src = r.path("big.in");
    {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&src).unwrap());
        write_mixed(&mut w, n, 7);
        w.flush().unwrap();
    }
    assert_eq!(fs::metadata(&src).unwrap().len(), n);
    let o = r.run_with_stdin_file(&["backup", "-n", "big", "--stdin", "--json"], &src);
    assert_ok(&o);
    let j = parse_json_line(&o);
    assert_eq!(u64_of(&j, "bytes_read"), n);
    let chunks = u64_of(&j, "chunks_new") + u64_of(&j, "chunks_reused");
    assert!(
        chunks > 4096,
        "expected chunk lists to be needed, got {chunks} chunks"
    );
    assert!(
        u64_of(&j, "bytes_stored") < n * 9 / 10,
        "half the input is compressible text, yet {} of {n} bytes were stored",
        u64_of(&j, "bytes_stored")
    );
    check_stream_three_ways(&r, "big", &src, "big");

    // the same bytes as a file in a tree: one file node with chunk lists,
    // every chunk shared with the stream
    let dir = r.path("bigtree");
    fs::create_dir(&dir).unwrap();
    fs::hard_link(&src, dir.join("big.in")).unwrap();
    fs::write(dir.join("small"), b"small").unwrap();
    let t = r.backup_path("bigtree", &dir);
    assert_eq!(u64_of(&t, "files"), 2);
    assert_eq!(u64_of(&t, "bytes_read"), n + 5);
    assert!(
        u64_of(&t, "bytes_new") <= 5,
        "the stream's chunks were not reused: {t}"
    );
    let out = r.path("bigtree.restored");
    let o = r.restore_to("bigtree", &out, &[]);
    assert_ok(&o);
    assert_trees_equal(&dir, &out, CompareOpts::all());
}

// ---------------------------------------------------------------- trees

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o640) },
        0,
        "mkfifo {p:?}"
    );
}

fn set_mtime(p: &Path, secs: i64, nsec: u32) {
    let t = FileTime::from_unix_time(secs, nsec);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory with every kind of thing coffre claims to keep (a fifo only
/// when `fifo`: restoring one hangs, see `tree_with_fifo_round_trips`).
fn build_tree(root: &Path, fifo: bool) -> Vec<std::path::PathBuf> {
    fs::create_dir(root).unwrap();
    let p = |rel: &str| root.join(rel);
    fs::write(p("plain.txt"), b"hello, world\n").unwrap();
    chmod(&p("plain.txt"), 0o600);
    fs::write(p("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    chmod(&p("run.sh"), 0o755);
    fs::write(p("empty-file"), b"").unwrap();
    chmod(&p("empty-file"), 0o644);
    fs::write(p("setuid-bin"), b"\x7fELF not really").unwrap();
    chmod(&p("setuid-bin"), 0o4755);

    fs::create_dir(p("private")).unwrap();
    fs::write(p("private/secret"), b"s3cret").unwrap();
    chmod(&p("private/secret"), 0o400);
    chmod(&p("private"), 0o700);

    fs::create_dir(p("shared")).unwrap();
    fs::write(p("shared/doc"), b"group doc").unwrap();
    chmod(&p("shared"), 0o2775);
    fs::create_dir(p("sticky")).unwrap();
    chmod(&p("sticky"), 0o1777);

    fs::create_dir(p("empty-dir")).unwrap();
    fs::create_dir_all(p("deep/a/b/c")).unwrap();

    symlink("plain.txt", p("link-relative")).unwrap();
    symlink("/etc/passwd", p("link-absolute")).unwrap();
    symlink("does/not/exist", p("link-dangling")).unwrap();
    symlink("../plain.txt", p("deep/a/link-up")).unwrap();

    fs::create_dir(p("ünïcödé Ωmega")).unwrap();
    fs::write(p("ünïcödé Ωmega/日本語ファイル.txt"), "こんにちは\n").unwrap();
    fs::write(p("émoji-🎉"), b"party").unwrap();
    let bad = root.join(OsStr::from_bytes(b"bad-\xff\xfe-name"));
    fs::write(&bad, b"not utf-8 name").unwrap();
    fs::write(p("line\nbreak"), b"newline in name").unwrap();
    fs::write(p("spaces and 'quotes\" $x"), b"shell chars").unwrap();

    if fifo {
        mkfifo(&p("a-fifo"));
    }

    // a file spanning many chunks (64 KiB average)
    fs::write(p("deep/big.bin"), random_bytes(3 * 1024 * 1024 + 7, 42)).unwrap();

    if is_root() {
        fs::write(p("owned"), b"owned by someone else").unwrap();
        std::os::unix::fs::lchown(p("owned"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(p("link-relative"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::lchown(p("sticky"), Some(1234), Some(5678)).unwrap();
        chmod(&p("sticky"), 0o1777);
        chmod(&p("shared"), 0o2775);
    }

    // mtimes with nanoseconds, set last: children before parents
    let mut all = walk(root);
    all.reverse();
    for (i, path) in all.iter().enumerate() {
        set_mtime(
            path,
            1_600_000_000 + i as i64 * 3600,
            123_456_789 + i as u32,
        );
    }
    // before 1970
    set_mtime(&p("plain.txt"), -86_400 * 365, 5);
    set_mtime(root, 1_700_000_000, 999_999_999);
    all
}

#[test]
fn tree_round_trip_keeps_everything() {
    let r = TestRepo::small_chunks();
    let src = r.path("src");
    build_tree(&src, false);
    let j = r.backup_path("files", &src);
    assert_eq!(u64_of(&j, "warnings"), 0, "{j}");
    assert_eq!(j["kind"], "tree");
    // regular files: plain, run.sh, empty, setuid, secret, doc, 日本語, émoji,
    // bad name, newline, spaces, big (+ owned when root)
    let files = if is_root() { 13 } else { 12 };
    assert_eq!(u64_of(&j, "files"), files, "{j}");

    let dst = r.path("restored");
    let o = r.restore_to("files", &dst, &[]);
    assert_ok(&o);
    assert_trees_equal(
        &src,
        &dst,
        CompareOpts {
            owner: is_root(),
            ..CompareOpts::all()
        },
    );
    if is_root() {
        let md = fs::symlink_metadata(dst.join("owned")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
    }

    // restoring into an existing empty directory works too
    let dst2 = r.path("restored-2");
    fs::create_dir(&dst2).unwrap();
    let o = r.run(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--name"),
        OsStr::new("files"),
        OsStr::new("--target"),
        dst2.as_os_str(),
    ]);
    assert_ok(&o);
    assert_trees_equal(&src, &dst2, CompareOpts::all());

    // ls shows the odd names
    let o = r.run(&["ls", "--name", "files", "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "line\nbreak",
        "deep/a/b/c",
        "ünïcödé Ωmega/日本語ファイル.txt",
        "link-dangling",
    ] {
        assert!(
            paths.iter().any(|p| p == want),
            "ls lacks {want:?}: {paths:?}"
        );
    }
    assert!(paths.iter().any(|p| p.starts_with("bad-")), "{paths:?}");
}

/// The full tree plus a fifo. Restoring the fifo hangs: `apply_metadata`
/// sets its times with `filetime::set_file_times`, which opens the path
/// (O_RDONLY) and blocks forever on a fifo that has no writer.
#[test]
fn tree_with_fifo_round_trips() {
    let r = TestRepo::small_chunks();
    let src = r.path("src");
    build_tree(&src, true);
    let j = r.backup_path("files", &src);
    assert_eq!(u64_of(&j, "warnings"), 0, "{j}");
    let dst = r.path("restored");
    let o = r.run_within(
        &[
            OsStr::new("restore"),
            OsStr::new("--name"),
            OsStr::new("files"),
            OsStr::new("--target"),
            dst.as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_ok(&o);
    assert_trees_equal(
        &src,
        &dst,
        CompareOpts {
            owner: is_root(),
            ..CompareOpts::all()
        },
    );
}

#[test]
fn single_file_tree_round_trip() {
    let r = TestRepo::small_chunks();
    let f = r.path("one.bin");
    fs::write(&f, random_bytes(300_000, 9)).unwrap();
    chmod(&f, 0o640);
    set_mtime(&f, 1_650_000_000, 1);
    let j = r.backup_path("one", &f);
    assert_eq!(u64_of(&j, "files"), 1);
    let dst = r.path("out");
    let o = r.restore_to("one", &dst, &[]);
    assert_ok(&o);
    let got = dst.join("one.bin");
    assert_same_file(&f, &got);
    let md = fs::metadata(&got).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_650_000_000, 1));
}

/// Restore creates files on several threads, a directory's batch at a time,
/// while the workers fill them: many directories of small and empty files,
/// one with more files than a batch and a batch that spans a subdirectory,
/// come back exactly, contents and metadata.
#[test]
fn many_small_and_empty_files_across_directories_round_trip() {
    let r = TestRepo::small_chunks();
    let src = r.path("src");
    let mut seed = 100u64;
    for d in 0..12usize {
        let top = src.join(format!("d{d:02}"));
        let inner = top.join("inner");
        fs::create_dir_all(&inner).unwrap();
        let files = if d == 5 { 90 } else { 6 + d * 3 };
        for f in 0..files {
            seed += 1;
            let len = if f % 4 == 0 {
                0
            } else {
                (f * 977 + d * 131) % 9000
            };
            let p = inner.join(format!("f{f:03}"));
            fs::write(&p, random_bytes(len, seed)).unwrap();
            chmod(&p, if f % 3 == 0 { 0o640 } else { 0o600 });
            set_mtime(&p, 1_600_000_000 + seed as i64, seed as u32);
        }
        // files on both sides of the subdirectory share a batch
        fs::write(top.join("a-before"), random_bytes(100, seed)).unwrap();
        fs::write(top.join("z-after"), b"").unwrap();
    }
    // and a file of many chunks among the small ones
    fs::write(src.join("d03/inner/f001"), random_bytes(700_000, 7)).unwrap();
    let j = r.backup_path("many", &src);
    let inner_files: u64 = (0..12).map(|d| if d == 5 { 90 } else { 6 + d * 3 }).sum();
    assert_eq!(u64_of(&j, "files"), inner_files + 12 * 2);
    let dst = r.path("restored");
    let o = r.restore_to("many", &dst, &[]);
    assert_ok(&o);
    assert_trees_equal(&src, &dst, CompareOpts::all());
}

// ---------------------------------------------------------------- dedup

#[test]
fn second_stream_backup_stores_nothing_new() {
    let r = TestRepo::small_chunks();
    let data = random_bytes(5 * 1024 * 1024, 3);
    let first = r.backup_bytes("db", &data, &[]);
    assert!(u64_of(&first, "chunks_new") > 10, "{first}");
    assert_eq!(u64_of(&first, "chunks_reused"), 0, "{first}");
    let packs_before = r.pack_files();

    let second = r.backup_bytes("db", &data, &[]);
    assert_eq!(u64_of(&second, "bytes_read"), data.len() as u64);
    assert_eq!(u64_of(&second, "chunks_new"), 0, "{second}");
    assert_eq!(u64_of(&second, "bytes_new"), 0, "{second}");
    assert!(
        u64_of(&second, "bytes_stored") < 4096,
        "identical stream stored {} bytes again",
        u64_of(&second, "bytes_stored")
    );
    assert_eq!(
        u64_of(&second, "chunks_reused"),
        u64_of(&first, "chunks_new")
    );
    assert_eq!(
        r.pack_files(),
        packs_before,
        "no new pack for identical data"
    );

    // the same data shifted by a few bytes: content-defined chunking keeps
    // almost every chunk
    let mut shifted = b"prefix!".to_vec();
    shifted.extend_from_slice(&data);
    let third = r.backup_bytes("db", &shifted, &[]);
    assert!(
        u64_of(&third, "bytes_new") < shifted.len() as u64 / 5,
        "a 7-byte shift re-stored {} of {} bytes",
        u64_of(&third, "bytes_new"),
        shifted.len()
    );
    assert_eq!(r.dump(&["--name", "db"]), shifted);
    assert_eq!(r.dump(&["latest~1", "--name", "db"]), data);
}

#[test]
fn unchanged_files_are_not_read_again() {
    let r = TestRepo::small_chunks();
    let src = r.path("vol");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("a.txt"), b"alpha alpha alpha").unwrap();
    fs::write(src.join("big.bin"), random_bytes(1_500_000, 5)).unwrap();
    fs::write(src.join("sub/b.txt"), b"bravo version one").unwrap();
    fs::write(src.join("sub/c.txt"), b"charlie").unwrap();
    fs::write(src.join("sub/deeper/d.bin"), random_bytes(200_000, 6)).unwrap();
    fs::write(src.join("sub/deeper/e"), b"").unwrap();

    let first = r.backup_path("vol", &src);
    assert_eq!(u64_of(&first, "files"), 6);
    assert_eq!(u64_of(&first, "files_unchanged"), 0);

    let second = r.backup_path("vol", &src);
    assert_eq!(u64_of(&second, "files"), 6, "{second}");
    assert_eq!(u64_of(&second, "files_unchanged"), 6, "{second}");
    assert_eq!(u64_of(&second, "bytes_read"), 0, "{second}");
    assert_eq!(u64_of(&second, "chunks_new"), 0, "{second}");

    // change one file: same size, new content, new mtime
    let changed = src.join("sub/b.txt");
    fs::write(&changed, b"bravo version two").unwrap();
    set_mtime(&changed, 1_700_000_123, 456);
    let third = r.backup_path("vol", &src);
    assert_eq!(u64_of(&third, "files"), 6, "{third}");
    assert_eq!(u64_of(&third, "files_unchanged"), 5, "{third}");
    assert_eq!(
        u64_of(&third, "bytes_read"),
        b"bravo version two".len() as u64,
        "only the changed file is read: {third}"
    );

    let new = r.path("new");
    let o = r.restore_to("vol", &new, &[]);
    assert_ok(&o);
    assert_trees_equal(&src, &new, CompareOpts::all());
    assert_eq!(
        fs::read(new.join("sub/b.txt")).unwrap(),
        b"bravo version two"
    );

    let old = r.path("old");
    let o = r.run(&[
        OsStr::new("restore"),
        OsStr::new("latest~1"),
        OsStr::new("--name"),
        OsStr::new("vol"),
        OsStr::new("--target"),
        old.as_os_str(),
    ]);
    assert_ok(&o);
    assert_eq!(
        fs::read(old.join("sub/b.txt")).unwrap(),
        b"bravo version one"
    );
    assert_eq!(
        fs::read(old.join("big.bin")).unwrap(),
        fs::read(src.join("big.bin")).unwrap()
    );

    // --no-parent reads everything again but stores nothing new
    let o = r.run(&[
        OsStr::new("backup"),
        OsStr::new("-n"),
        OsStr::new("vol"),
        OsStr::new("--json"),
        OsStr::new("--no-parent"),
        src.as_os_str(),
    ]);
    assert_ok(&o);
    let j = parse_json_line(&o);
    assert_eq!(u64_of(&j, "files_unchanged"), 0, "{j}");
    assert_eq!(u64_of(&j, "chunks_new"), 0, "{j}");
}

/// `backup -n vol /data/` after `backup -n vol /data` (or the other way
/// round, as shell completion gives) is the same directory, but the stored
/// path keeps the trailing slash, the parent snapshot is not found, and every
/// file is read again.
#[test]
fn trailing_slash_still_finds_the_parent_snapshot() {
    let r = TestRepo::small_chunks();
    let src = r.path("vol");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), random_bytes(100_000, 1)).unwrap();
    fs::write(src.join("b"), b"bee").unwrap();
    r.backup_path("vol", &src);
    let mut with_slash = src.clone().into_os_string();
    with_slash.push("/");
    let j = r.backup_path("vol", Path::new(&with_slash));
    assert_eq!(u64_of(&j, "files_unchanged"), 2, "{j}");
    assert_eq!(u64_of(&j, "bytes_read"), 0, "{j}");
}

// ------------------------------------------------- snapshot selection

/// rustic 0.11.4 lost data this way: two stdin backups under the same name,
/// and "latest" restored the older one. The newest must win, `latest~1` is
/// the older one, and other entries in between must not confuse the choice.
#[test]
fn rustic_0_11_4_regression_same_name_stdin_backups_dump_latest_returns_newest() {
    let r = TestRepo::small_chunks();
    let old = random_bytes(700_000, 11);
    let mut new = old.clone();
    // same length, differs only near the end
    let n = new.len();
    new[n - 10..].copy_from_slice(b"NEW DATA!!");
    let a = r.backup_bytes("db/app", &old, &[]);
    let b = r.backup_bytes("db/app", &new, &[]);
    assert_ne!(a["snapshot"], b["snapshot"]);
    r.backup_bytes("other", b"unrelated entry", &[]);

    assert_eq!(
        r.dump(&["--name", "db/app"]),
        new,
        "latest must be the newest"
    );
    assert_eq!(r.dump(&["latest", "--name", "db/app"]), new);
    assert_eq!(r.dump(&["latest~1", "--name", "db/app"]), old);
    let short_a = &a["snapshot"].as_str().unwrap()[..8];
    assert_eq!(r.dump(&[short_a, "--name", "db/app"]), old);
    let o = r.run(&["dump", "latest~2", "--name", "db/app"]);
    assert_code(&o, 13);
    assert!(o.stdout.is_empty());

    // still true when the index is rebuilt from the snapshot files
    fs::remove_file(r.repo.join("index/index.sqlite")).unwrap();
    assert_eq!(r.dump(&["--name", "db/app"]), new);
    assert_eq!(r.dump(&["latest~1", "--name", "db/app"]), old);
}

fn local_time_string(ns: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn rfc3339_ns(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

#[test]
fn snapshot_selection_by_time_tag_and_prefix() {
    let r = TestRepo::small_chunks();
    let mut summaries = Vec::new();
    for (i, tag) in ["daily", "weekly", "daily"].iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let data = format!("version {i}\n").repeat(1000);
        summaries.push(r.backup_bytes("db", data.as_bytes(), &["--tag", tag]));
    }
    let content = |i: usize| format!("version {i}\n").repeat(1000).into_bytes();
    let id = |i: usize| summaries[i]["snapshot"].as_str().unwrap().to_string();
    let t = |i: usize| rfc3339_ns(summaries[i]["time"].as_str().unwrap());

    // a whole second after the first snapshot's second began, before the second
    let between = (t(0) / 1_000_000_000 + 1) * 1_000_000_000;
    assert!(t(0) <= between && between < t(1));
    let at = local_time_string(between);
    let o = r.run(&["dump", "--name", "db", "--at", &at]);
    assert_ok(&o);
    assert_eq!(
        o.stdout,
        content(0),
        "--at {at} must pick the first snapshot"
    );
    assert!(
        stderr_of(&o).contains(&format!("using snapshot {}", &id(0)[..8])),
        "{}",
        stderr_of(&o)
    );

    // RFC 3339 works too
    let at_utc = chrono::DateTime::from_timestamp_nanos(between)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(r.dump(&["--name", "db", "--at", &at_utc]), content(0));

    // at or after the last snapshot: the last
    let later = local_time_string(t(2) + 2_000_000_000);
    assert_eq!(r.dump(&["--name", "db", "--at", &later]), content(2));

    // before everything: not found
    let before = local_time_string(t(0) - 3_600_000_000_000);
    let o = r.run(&["dump", "--name", "db", "--at", &before]);
    assert_code(&o, 13);

    // a bad time: usage error
    let o = r.run(&["dump", "--at", "next tuesday"]);
    assert_code(&o, 2);

    // tags
    let weekly = r.snapshots(&["--tag", "weekly"]);
    assert_eq!(weekly.len(), 1);
    assert_eq!(weekly[0]["id"], id(1));
    assert_eq!(r.snapshots(&["--tag", "daily"]).len(), 2);
    assert_eq!(r.snapshots(&["--name", "db"]).len(), 3);
    assert!(r.snapshots(&["--tag", "nope"]).is_empty());
    let o = r.run(&["dump", "--tag", "weekly"]);
    assert_ok(&o);
    assert_eq!(o.stdout, content(1));
    assert!(stderr_of(&o).contains(&format!("using snapshot {}", &id(1)[..8])));
    assert_eq!(r.dump(&["latest~1", "--tag", "daily"]), content(0));

    // latest~N and id prefixes
    assert_eq!(r.dump(&["latest~2"]), content(0));
    let o = r.run(&["dump", &id(1)[..10]]);
    assert_ok(&o);
    assert_eq!(o.stdout, content(1));
    assert!(stderr_of(&o).contains(&format!("using snapshot {}", &id(1)[..8])));

    // listing order and fields
    let all = r.snapshots(&[]);
    let ids: Vec<String> = all
        .iter()
        .map(|s| s["id"].as_str().unwrap().into())
        .collect();
    assert_eq!(ids, vec![id(0), id(1), id(2)]);
    assert_eq!(all[1]["tags"], serde_json::json!(["weekly"]));
    for s in &all {
        for k in ["time", "host", "user"] {
            assert!(s[k].is_string(), "{k} missing in {s}");
        }
    }
}

#[test]
fn host_option_is_recorded() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("x", b"from db1", &["--host", "db1.example"]);
    r.backup_bytes("x", b"from db2", &["--host", "db2.example"]);
    let s = r.snapshots(&["--host", "db1.example"]);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["host"], "db1.example");
    assert_eq!(r.dump(&["--host", "db1.example"]), b"from db1");
}

// ---------------------------------------------------------- concurrency

/// Start `coffre backup -n NAME --stdin` for each (name, data) at once and
/// wait for all; returns their outputs.
fn concurrent_backups(r: &TestRepo, inputs: &[(String, Vec<u8>)]) -> Vec<std::process::Output> {
    let children: Vec<_> = inputs
        .iter()
        .map(|(name, data)| {
            let f = r.path(&format!("{}.in", name.replace('/', "_")));
            fs::write(&f, data).unwrap();
            let mut c = r.cmd();
            c.args(["backup", "-n", name, "--stdin"])
                .stdin(File::open(&f).unwrap())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn check_concurrent_round(r: &TestRepo, round: usize) {
    let inputs: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            let mut d = random_bytes(2 << 20, 77); // shared prefix: dedup races
            d.extend(random_bytes(300_000, (round * 10 + i) as u64));
            (format!("r{round}/c{i}"), d)
        })
        .collect();
    let outs = concurrent_backups(r, &inputs);
    for ((name, _), o) in inputs.iter().zip(&outs) {
        assert!(
            o.status.success(),
            "round {round}: concurrent backup {name} failed ({:?}): {}",
            o.status,
            stderr_of(o)
        );
    }
    for (name, data) in &inputs {
        assert!(
            r.dump(&["--name", name]) == *data,
            "{name} does not restore exactly"
        );
    }
}

#[test]
fn concurrent_backups_into_one_repository() {
    let r = TestRepo::small_chunks();
    // the index exists once any command has opened the repository
    assert!(r.snapshots(&[]).is_empty());
    for round in 0..2 {
        check_concurrent_round(&r, round);
    }
    assert_eq!(r.snapshots(&[]).len(), 8);
}

/// Right after `init` (or after the index file was deleted, as the error
/// hints advise) the index does not exist yet. Processes that start together
/// all try to create it: the losers' `BEGIN IMMEDIATE; CREATE TABLE …; COMMIT`
/// fails on "table meta already exists", the error is swallowed because
/// user_version is already set, but the transaction is left open, so their
/// first write fails with "cannot start a transaction within a transaction"
/// (exit 1). A process that looks between the schema commit and the insert
/// of the repository id fails with "index … belongs to another repository".
#[test]
fn concurrent_first_use_of_a_new_repository() {
    for round in 0..3 {
        let r = TestRepo::small_chunks();
        check_concurrent_round(&r, round);
        assert_eq!(r.snapshots(&[]).len(), 4);

        // readers racing to rebuild a deleted index
        let index = r.repo.join("index/index.sqlite");
        for f in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{f}", index.display()));
        }
        let children: Vec<_> = (0..4)
            .map(|_| {
                let mut c = r.cmd();
                c.args(["snapshots", "--json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}: concurrent `snapshots` after deleting the index failed: {}",
                stderr_of(&o)
            );
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v.as_array().unwrap().len(), 4);
        }
    }
}

// ---------------------------------------------------------------- keys

fn key_list(r: &TestRepo, password: &str) -> Vec<serde_json::Value> {
    let mut c = r.cmd();
    c.env("COFFRE_PASSWORD", password)
        .args(["key", "list", "--json"]);
    let o = output_within(c, Duration::from_secs(60));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().clone()
}

fn key_cmd(
    r: &TestRepo,
    password: &str,
    new_password: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut c = r.cmd();
    c.env("COFFRE_PASSWORD", password).args(["key"]).args(args);
    if let Some(n) = new_password {
        c.env("COFFRE_NEW_PASSWORD", n);
    }
    output_within(c, Duration::from_secs(60))
}

fn current_key(keys: &[serde_json::Value]) -> String {
    let cur: Vec<_> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(cur.len(), 1, "exactly one current key: {keys:?}");
    cur[0]["id"].as_str().unwrap().to_string()
}

fn snapshots_with(r: &TestRepo, password: &str) -> std::process::Output {
    let mut c = r.cmd();
    c.env("COFFRE_PASSWORD", password)
        .args(["snapshots", "--json"]);
    output_within(c, Duration::from_secs(60))
}

#[test]
fn key_add_list_remove_passwd() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("x", b"keyed data", &[]);
    let first = PASSWORD;
    let keys = key_list(&r, first);
    assert_eq!(keys.len(), 1);
    let first_id = current_key(&keys);

    // add a second password
    let o = key_cmd(
        &r,
        first,
        Some("second password"),
        &[
            "add",
            "--kdf-memory",
            "8",
            "--kdf-iterations",
            "1",
            "--kdf-parallelism",
            "1",
        ],
    );
    assert_ok(&o);
    let keys = key_list(&r, "second password");
    assert_eq!(keys.len(), 2);
    let second_id = current_key(&keys);
    assert_ne!(first_id, second_id);
    assert_eq!(
        keys.iter().find(|k| k["id"] == second_id.as_str()).unwrap()["kdf"]["memory_kib"],
        8192
    );
    let mut c = r.cmd();
    c.env("COFFRE_PASSWORD", "second password").args(["dump"]);
    let o = output_within(c, Duration::from_secs(60));
    assert_ok(&o);
    assert_eq!(o.stdout, b"keyed data");

    // the key in use cannot be removed
    let o = key_cmd(&r, first, None, &["remove", &first_id]);
    assert_code(&o, 2);
    assert!(stderr_of(&o).contains("refusing"), "{}", stderr_of(&o));
    assert_eq!(key_list(&r, first).len(), 2);

    // unknown key id
    let o = key_cmd(
        &r,
        first,
        None,
        &["remove", "00000000000000000000000000000000"],
    );
    assert_code(&o, 13);

    // remove the first key with the second password: the first no longer opens
    let o = key_cmd(&r, "second password", None, &["remove", &first_id]);
    assert_ok(&o);
    let o = snapshots_with(&r, first);
    assert_code(&o, 11);
    assert_ok(&snapshots_with(&r, "second password"));

    // passwd: old fails, new works
    let o = key_cmd(
        &r,
        "second password",
        Some("third password"),
        &[
            "passwd",
            "--kdf-memory",
            "8",
            "--kdf-iterations",
            "1",
            "--kdf-parallelism",
            "1",
        ],
    );
    assert_ok(&o);
    let o = snapshots_with(&r, "second password");
    assert_code(&o, 11);
    assert!(stderr_of(&o).contains("wrong password"));
    assert_ok(&snapshots_with(&r, "third password"));
    let keys = key_list(&r, "third password");
    assert_eq!(keys.len(), 1);
    let only = current_key(&keys);

    // the last key (which is also the current one) cannot be removed
    let o = key_cmd(&r, "third password", None, &["remove", &only]);
    assert_code(&o, 2);
    assert_eq!(key_list(&r, "third password").len(), 1);
    assert!(r.repo.join("keys").join(&only).exists());

    // key add without a new password and no terminal: fails fast
    let o = key_cmd(&r, "third password", None, &["add"]);
    assert_code(&o, 2);
}

// --------------------------------------------------------- permissions

#[test]
fn repository_files_are_private() {
    let r = TestRepo::small_chunks();
    let src = r.path("tree");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), random_bytes(400_000, 1)).unwrap();
    chmod(&src.join("f"), 0o644);
    // run coffre with a permissive umask: it must not matter
    let permissive = |args: &[&OsStr]| {
        let mut c = r.cmd();
        c.args(args);
        // SAFETY: umask is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        output_within(c, Duration::from_secs(120))
    };
    assert_ok(&permissive(&[
        OsStr::new("backup"),
        OsStr::new("-n"),
        OsStr::new("tree"),
        src.as_os_str(),
    ]));
    let input = r.path("input");
    fs::write(&input, random_bytes(2_000_000, 2)).unwrap();
    let mut c = r.cmd();
    c.args(["backup", "-n", "stream", "--stdin"])
        .stdin(File::open(&input).unwrap());
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    assert_ok(&output_within(c, Duration::from_secs(120)));
    let mut c = r.cmd();
    c.env("COFFRE_NEW_PASSWORD", "another").args([
        "key",
        "add",
        "--kdf-memory",
        "8",
        "--kdf-iterations",
        "1",
        "--kdf-parallelism",
        "1",
    ]);
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    assert_ok(&output_within(c, Duration::from_secs(120)));

    let mut bad = Vec::new();
    let mut seen_files = 0;
    for p in walk(&r.repo) {
        let md = fs::symlink_metadata(&p).unwrap();
        let mode = md.mode() & 0o7777;
        if md.is_dir() {
            if mode != 0o700 {
                bad.push(format!("dir {} has mode {mode:o}", p.display()));
            }
        } else {
            seen_files += 1;
            if mode != 0o600 {
                bad.push(format!("file {} has mode {mode:o}", p.display()));
            }
        }
    }
    assert!(seen_files >= 6, "walked too few files");
    assert!(
        bad.is_empty(),
        "repository is not private:\n{}",
        bad.join("\n")
    );
}

/// Names in a tree come from wherever the files came from (an uploads
/// directory: from the web): `ls` shows control characters in them escaped,
/// one entry per line; `ls --json` and the restore keep them exact.
#[test]
fn ls_escapes_control_characters_in_names_and_restore_keeps_them() {
    let r = TestRepo::small_chunks();
    let src = r.path("uploads");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("cv\u{1b}]0;pwned\u{7}.pdf"), b"pdf").unwrap();
    fs::write(src.join("two\nlines.txt"), b"txt").unwrap();
    symlink("target\u{1b}[2J", src.join("link")).unwrap();
    r.backup_path("uploads", &src);

    let o = r.run(&["ls", "latest", "--name", "uploads"]);
    assert_ok(&o);
    assert!(
        !o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07),
        "{o:?}"
    );
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 3, "one line per entry: {out}");
    for shown in [
        "cv\\u{1b}]0;pwned\\u{7}.pdf",
        "two\\u{a}lines.txt",
        "link -> target\\u{1b}[2J",
    ] {
        assert!(out.contains(shown), "{shown} in {out}");
    }

    let o = r.run(&["ls", "latest", "--name", "uploads", "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut paths: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["cv\u{1b}]0;pwned\u{7}.pdf", "link", "two\nlines.txt"]
    );

    let dst = r.path("restored");
    assert_ok(&r.restore_to("uploads", &dst, &[]));
    assert_trees_equal(&src, &dst, CompareOpts::all());
}

/// Key files are plaintext and the storage is not trusted: a real key file
/// whose host was rewritten to hold an escape sequence, and a stray file
/// whose name holds one, are skipped with warnings that show neither raw;
/// the repository still opens with its good key.
#[test]
fn planted_text_in_key_files_never_reaches_the_terminal() {
    let r = TestRepo::small_chunks();
    let keys = r.repo.join("keys");
    let good = fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    let mut kf: serde_json::Value = serde_json::from_slice(&fs::read(&good).unwrap()).unwrap();
    kf["id"] = "0123456789abcdef0123456789abcdef".into();
    kf["host"] = "db1\u{1b}]0;pwned\u{7}\u{1b}[2J".into();
    fs::write(
        keys.join("0123456789abcdef0123456789abcdef"),
        kf.to_string(),
    )
    .unwrap();
    fs::write(keys.join("stray\u{1b}[31m"), b"{}").unwrap();
    for args in [
        &["key", "list"][..],
        &["key", "list", "--json"],
        &["snapshots"],
    ] {
        let o = r.run(args);
        assert_ok(&o);
        assert!(
            !o.stderr.contains(&0x1b) && !o.stdout.contains(&0x1b),
            "{args:?}: an escape sequence reached the terminal: {o:?}"
        );
        let err = stderr_of(&o);
        assert!(
            err.contains("key file 0123456789abcdef0123456789abcdef")
                && err.contains("key file host holds a control character")
                && err.contains("key file stray\\u{1b}[31m"),
            "{args:?}: {err}"
        );
    }
}

/// `Repo::open` skips a damaged key file with a warning, but `key list`
/// fails outright (exit 14) with "key file is not valid: …", without saying
/// which file, so the user cannot find the one to remove.
#[test]
fn key_list_survives_a_damaged_key_file() {
    let r = TestRepo::small_chunks();
    fs::write(
        r.repo.join("keys/0123456789abcdef0123456789abcdef"),
        b"junk",
    )
    .unwrap();
    // the repository still opens
    assert!(r.snapshots(&[]).is_empty());
    let o = r.run(&["key", "list", "--json"]);
    let err = stderr_of(&o);
    assert!(
        err.contains("0123456789abcdef0123456789abcdef"),
        "the damaged key file must be named: {err}"
    );
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .filter(|k| k["current"] == true)
            .count(),
        1,
        "the good key is listed: {v}"
    );
}
