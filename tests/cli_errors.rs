//! What the user sees when things go wrong: failing dump commands, wrong or
//! missing passwords, missing repositories and snapshots, refused restores,
//! and damaged repositories (never wrong bytes, always the pack named).

mod common;

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Every failure path below must keep the snapshot list as it was.
fn assert_snapshot_list_unchanged(r: &TestRepo, before: &[String]) {
    assert_eq!(
        r.snapshot_ids(),
        before,
        "a failed backup must not add a snapshot"
    );
    assert_eq!(r.snapshot_files().len(), before.len());
}

fn backup_command(r: &TestRepo, name: &str, argv: &[&str]) -> std::process::Output {
    let mut args = vec!["backup", "-n", name, "--"];
    args.extend_from_slice(argv);
    r.run_within(&args, Duration::from_secs(60))
}

#[test]
fn failing_commands_make_no_snapshot() {
    let r = TestRepo::small_chunks();
    let o = backup_command(&r, "db", &["sh", "-c", "printf 'good dump'"]);
    assert_ok(&o);
    let before = r.snapshot_ids();
    assert_eq!(before.len(), 1);

    let cases: &[(&[&str], &str)] = &[
        (&["false"], "exited with status 1"),
        (&["sh", "-c", "exit 7"], "exited with status 7"),
        (&["sh", "-c", "kill -9 $$"], "signal 9"),
        (&["true"], "empty"),
        (
            &["sh", "-c", "head -c 600000 /dev/zero | tr '\\0' x; exit 1"],
            "exited with status 1",
        ),
        (&["sh", "-c", "printf partial; kill -TERM $$"], "signal 15"),
    ];
    for (argv, want) in cases {
        let o = backup_command(&r, "db", argv);
        assert_code(&o, 15);
        let err = stderr_of(&o);
        assert!(
            err.contains(want),
            "{argv:?}: stderr should say {want:?}: {err}"
        );
        assert!(
            err.contains("no snapshot"),
            "{argv:?}: stderr should say no snapshot was made: {err}"
        );
        assert!(o.stdout.is_empty());
        assert_snapshot_list_unchanged(&r, &before);
    }

    // a program that does not exist
    let o = backup_command(&r, "db", &["coffre-test-no-such-program"]);
    assert!(!o.status.success());
    assert_code(&o, 15);
    let err = stderr_of(&o);
    assert!(
        err.contains("coffre-test-no-such-program") && err.contains("PATH"),
        "the error should name the program and hint at PATH: {err}"
    );
    assert_snapshot_list_unchanged(&r, &before);

    // the good snapshot is intact
    assert_eq!(r.dump(&["--name", "db"]), b"good dump");
}

#[test]
fn command_backup_runs_without_shell_and_redacts_secrets() {
    let r = TestRepo::small_chunks();
    // no shell: the `;` and `$HOME` are plain arguments printed back
    let o = backup_command(&r, "echo", &["printf", "%s|%s", "a;b", "$HOME"]);
    assert_ok(&o);
    assert_eq!(r.dump(&["--name", "echo"]), b"a;b|$HOME");

    let o = backup_command(
        &r,
        "secret",
        &[
            "sh",
            "-c",
            "printf dumped",
            "sh",
            "--password=hunter2",
            "postgresql://app:pw123@db/app",
        ],
    );
    assert_ok(&o);
    let o = r.run(&["ls", "--json"]);
    assert_ok(&o);
    let text = stdout_of(&o);
    assert!(text.contains("printf dumped"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("pw123"),
        "secrets stored in the snapshot: {text}"
    );
}

#[test]
fn no_password_source_fails_fast() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("x", b"data", &[]);
    for args in [
        vec!["snapshots"],
        vec!["dump"],
        vec!["ls"],
        vec!["backup", "-n", "x", "--stdin"],
        vec!["key", "list"],
    ] {
        let mut c = bare_cmd();
        c.env("COFFRE_REPO", &r.repo).args(&args);
        let o = output_within(c, Duration::from_secs(20));
        assert_code(&o, 2);
        let err = stderr_of(&o);
        assert!(
            err.contains("password") && err.contains("COFFRE_PASSWORD"),
            "{args:?}: {err}"
        );
    }
    // init of a new repository asks for a new password: also fails fast
    let mut c = bare_cmd();
    c.env("COFFRE_REPO", r.path("new-repo"))
        .arg("init")
        .args(FAST_KDF);
    let o = output_within(c, Duration::from_secs(20));
    assert_code(&o, 2);
    assert!(!r.path("new-repo").join("config").exists());
}

#[test]
fn password_file_and_command_work() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("x", b"data", &[]);
    let pwfile = r.path("pw.txt");
    fs::write(&pwfile, format!("{PASSWORD}\nignored second line\n")).unwrap();
    let mut c = bare_cmd();
    c.env("COFFRE_REPO", &r.repo)
        .arg("--password-file")
        .arg(&pwfile)
        .arg("dump");
    let o = output_within(c, Duration::from_secs(30));
    assert_ok(&o);
    assert_eq!(o.stdout, b"data");

    let mut c = bare_cmd();
    c.env("COFFRE_REPO", &r.repo)
        .env(
            "COFFRE_PASSWORD_COMMAND",
            format!("cat {}", pwfile.display()),
        )
        .arg("dump");
    let o = output_within(c, Duration::from_secs(30));
    assert_ok(&o);
    assert_eq!(o.stdout, b"data");

    // a failing password command is an error, not a prompt
    let mut c = bare_cmd();
    c.env("COFFRE_REPO", &r.repo)
        .env("COFFRE_PASSWORD_COMMAND", "false")
        .arg("dump");
    let o = output_within(c, Duration::from_secs(30));
    assert_code(&o, 2);
}

#[test]
fn wrong_password_is_exit_11_with_one_line() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("x", b"data", &[]);
    let before = r.snapshot_ids();
    for args in [
        vec!["snapshots"],
        vec!["dump"],
        vec!["backup", "-n", "x", "--stdin"],
    ] {
        let mut c = r.cmd();
        c.env("COFFRE_PASSWORD", "not the password").args(&args);
        let o = output_within(c, Duration::from_secs(30));
        assert_code(&o, 11);
        let err = stderr_of(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains("wrong password"), "{err}");
        assert!(!err.contains(PASSWORD) && !err.contains("not the password"));
        assert!(o.stdout.is_empty());
    }
    assert_eq!(r.snapshot_ids(), before);
}

#[test]
fn missing_repository_is_exit_10_with_init_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for repo in [tmp.path().join("nowhere"), empty] {
        for args in [
            vec!["snapshots"],
            vec!["dump"],
            vec!["backup", "-n", "x", "--stdin"],
        ] {
            let mut c = bare_cmd();
            // with and without a password: the repository is checked first
            c.env("COFFRE_REPO", &repo).args(&args);
            let o = output_within(c, Duration::from_secs(20));
            assert_code(&o, 10);
            let err = stderr_of(&o);
            assert!(
                err.contains("coffre init"),
                "hint should mention `coffre init`: {err}"
            );
            let mut c = bare_cmd();
            c.env("COFFRE_PASSWORD", "x")
                .arg("--repo")
                .arg(&repo)
                .args(&args);
            assert_code(&output_within(c, Duration::from_secs(20)), 10);
        }
    }
    assert!(
        !tmp.path().join("nowhere").exists(),
        "must not create a repository"
    );

    // no repository given at all: usage
    let mut c = bare_cmd();
    c.env("COFFRE_PASSWORD", "x").arg("snapshots");
    let o = output_within(c, Duration::from_secs(20));
    assert_code(&o, 2);
    assert!(stderr_of(&o).contains("COFFRE_REPO"));
}

#[test]
fn init_refuses_existing_repository() {
    let r = TestRepo::small_chunks();
    let o = r.run(&[&["init"][..], &FAST_KDF[..]].concat());
    assert_code(&o, 2);
    assert!(stderr_of(&o).contains("already"), "{}", stderr_of(&o));
}

#[test]
fn unknown_snapshot_or_entry_is_exit_13() {
    let r = TestRepo::small_chunks();
    let j = r.backup_bytes("db", b"data", &[]);
    let id = j["snapshot"].as_str().unwrap();
    // a prefix that matches nothing
    let other = if id.starts_with('0') {
        "1234abcd"
    } else {
        "0123abcd"
    };
    let o = r.run(&["dump", other]);
    assert_code(&o, 13);
    assert!(stderr_of(&o).contains(other), "{}", stderr_of(&o));
    assert!(o.stdout.is_empty());
    let o = r.run(&["dump", "--name", "nope"]);
    assert_code(&o, 13);
    let o = r.run(&["dump", "latest~1"]);
    assert_code(&o, 13);
    let o = r.run(&["ls", other]);
    assert_code(&o, 13);
    let t = r.path("t");
    let o = r.run(&[
        OsStr::new("restore"),
        OsStr::new(other),
        OsStr::new("--target"),
        t.as_os_str(),
    ]);
    assert_code(&o, 13);
    assert!(!t.exists());
    // a non-hex prefix is a usage error
    assert_code(&r.run(&["dump", "xyz"]), 2);
    // the full id and a prefix work
    assert_eq!(r.dump(&[id]), b"data");
    assert_eq!(r.dump(&[&id[..6]]), b"data");
}

/// Error messages carry outside text (file names, a child's stderr, a
/// server's reply): control characters in it are shown escaped, never
/// written to the terminal raw.
#[test]
fn control_characters_in_error_messages_are_escaped() {
    let r = TestRepo::small_chunks();
    let missing = r.path("gone\u{1b}]0;pwned\u{7}");
    let o = r.run(&[
        OsStr::new("backup"),
        OsStr::new("--name"),
        OsStr::new("v"),
        missing.as_os_str(),
    ]);
    assert_code(&o, 13);
    assert!(
        !o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07),
        "{o:?}"
    );
    let err = stderr_of(&o);
    assert!(
        err.contains("gone\\u{1b}]0;pwned\\u{7} does not exist"),
        "{err}"
    );
    // a dump command's stderr, quoted in the error, likewise
    let o = backup_command(
        &r,
        "db",
        &["sh", "-c", "printf 'bad\\033[2J\\n' >&2; exit 3"],
    );
    assert_code(&o, 15);
    let err = stderr_of(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("coffre: error:") && !last.contains('\u{1b}'),
        "{err:?}"
    );
    assert!(last.contains("bad\\u{1b}[2J"), "{err:?}");
}

#[test]
fn usage_errors_are_exit_2() {
    let r = TestRepo::small_chunks();
    let src = r.path("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    r.backup_path("tree", &src);
    let cases: Vec<Vec<&OsStr>> = vec![
        vec!["backup".as_ref(), "-n".as_ref(), "x".as_ref()],
        vec![
            "backup".as_ref(),
            "-n".as_ref(),
            "x".as_ref(),
            "--stdin".as_ref(),
            src.as_os_str(),
        ],
        vec![
            "backup".as_ref(),
            "-n".as_ref(),
            "../x".as_ref(),
            "--stdin".as_ref(),
        ],
        vec![
            "backup".as_ref(),
            "-n".as_ref(),
            "x".as_ref(),
            "--stdin".as_ref(),
            "--tag".as_ref(),
            "a,b".as_ref(),
        ],
        vec![
            "restore".as_ref(),
            "--name".as_ref(),
            "tree".as_ref(),
            "--into".as_ref(),
        ],
        vec!["restore".as_ref(), "--name".as_ref(), "tree".as_ref()],
        // a tree cannot be dumped or piped
        vec!["dump".as_ref(), "--name".as_ref(), "tree".as_ref()],
        vec![
            "restore".as_ref(),
            "--name".as_ref(),
            "tree".as_ref(),
            "--into".as_ref(),
            "--".as_ref(),
            "cat".as_ref(),
        ],
        vec!["no-such-subcommand".as_ref()],
    ];
    for args in cases {
        let o = r.run_with_stdin(&args, b"input");
        assert_code(&o, 2);
        assert!(o.stdout.is_empty() || args[0] == "no-such-subcommand");
    }
    assert_eq!(r.snapshot_ids().len(), 1);
}

#[test]
fn restore_refuses_non_empty_target_without_overwrite() {
    let r = TestRepo::small_chunks();
    let src = r.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("keep.txt"), b"from the backup").unwrap();
    fs::write(src.join("sub/new.txt"), b"new file").unwrap();
    r.backup_path("files", &src);
    r.backup_bytes("stream", b"stream data", &[]);

    let target = r.path("target");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep.txt"), b"precious local edit").unwrap();
    let o = r.restore_to("files", &target, &[]);
    assert_code(&o, 2);
    assert!(stderr_of(&o).contains("not empty"), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("--overwrite"), "{}", stderr_of(&o));
    let names: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("keep.txt")],
        "nothing written"
    );
    assert_eq!(
        fs::read(target.join("keep.txt")).unwrap(),
        b"precious local edit"
    );

    // with --overwrite the backup wins
    let o = r.restore_to("files", &target, &["--overwrite"]);
    assert_ok(&o);
    assert_trees_equal(&src, &target, CompareOpts::all());

    // what is in the way has the wrong type: a directory (with contents)
    // where the backup has a file, a file where it has a directory
    fs::remove_file(target.join("keep.txt")).unwrap();
    fs::create_dir_all(target.join("keep.txt/inside")).unwrap();
    fs::write(target.join("keep.txt/inside/x"), b"x").unwrap();
    fs::remove_dir_all(target.join("sub")).unwrap();
    fs::write(target.join("sub"), b"a file named like the directory").unwrap();
    let o = r.restore_to("files", &target, &["--overwrite"]);
    assert_ok(&o);
    assert_trees_equal(&src, &target, CompareOpts::all());

    // a stream over an existing file
    let file = r.path("out.bin");
    fs::write(&file, b"existing").unwrap();
    let args = [
        OsStr::new("restore"),
        OsStr::new("--name"),
        OsStr::new("stream"),
        OsStr::new("--target"),
        file.as_os_str(),
    ];
    let o = r.run(&args);
    assert_code(&o, 2);
    assert_eq!(fs::read(&file).unwrap(), b"existing");
    let o = r.run(&[&args[..], &[OsStr::new("--overwrite")]].concat());
    assert_ok(&o);
    assert_eq!(fs::read(&file).unwrap(), b"stream data");

    // a stream into a directory
    let o = r.restore_to("stream", &target, &[]);
    assert_code(&o, 2);
}

#[test]
fn restore_into_failing_command_fails() {
    let r = TestRepo::small_chunks();
    let data = random_bytes(2_000_000, 4);
    r.backup_bytes("s", &data, &[]);
    let o = r.run(&[
        "restore",
        "--name",
        "s",
        "--into",
        "--",
        "sh",
        "-c",
        "cat >/dev/null; exit 3",
    ]);
    assert_code(&o, 15);
    assert!(stderr_of(&o).contains("sh"), "{}", stderr_of(&o));
    // a command that stops reading early
    let o = r.run(&["restore", "--name", "s", "--into", "--", "head", "-c", "10"]);
    assert_eq!(o.stdout.len(), 10);
    assert_code(&o, 15);
    let o = r.run(&[
        "restore",
        "--name",
        "s",
        "--into",
        "--",
        "coffre-test-no-such-program",
    ]);
    assert_code(&o, 15);
    // and one that reads it all
    let o = r.run(&["restore", "--name", "s", "--into", "--", "cat"]);
    assert_ok(&o);
    assert_eq!(o.stdout, data);
}

// ---------------------------------------------------------------- corruption

fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

/// Refused as damaged (exit 14), naming the damaged pack.
#[track_caller]
fn assert_refused_naming(o: &std::process::Output, pack: &Path) {
    assert_code(o, 14);
    assert!(
        stderr_of(o).contains(&file_name(pack)),
        "stderr should name pack {}: {}",
        file_name(pack),
        stderr_of(o)
    );
}

#[test]
fn corrupt_pack_single_chunk_is_refused_and_named() {
    let r = TestRepo::small_chunks();
    let data = random_bytes(10_000, 8);
    r.backup_bytes("one", &data, &[]);
    let packs = r.pack_files();
    assert_eq!(packs.len(), 1, "one chunk, one pack");
    let pack = &packs[0];
    let pack_id = file_name(pack);
    assert_eq!(pack_id.len(), 64);
    flip_byte(pack, 100);

    let o = r.run(&["dump", "--name", "one"]);
    assert_code(&o, 14);
    let err = stderr_of(&o);
    assert!(
        err.contains(&pack_id),
        "stderr should name pack {pack_id}: {err}"
    );
    assert!(
        o.stdout.is_empty(),
        "{} unverified bytes were written",
        o.stdout.len()
    );

    let target = r.path("restored.bin");
    let o = r.restore_to("one", &target, &[]);
    assert_code(&o, 14);
    assert!(stderr_of(&o).contains(&pack_id));
    assert!(!target.exists(), "no partial file left at the target");
    let leftovers: Vec<_> = fs::read_dir(r.tmp.path())
        .unwrap()
        .map(|e| file_name(&e.unwrap().path()))
        .filter(|n| n.starts_with(".coffre-restore"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    let out = r.path("piped.bin");
    let o = r.run(&[
        OsStr::new("restore"),
        OsStr::new("--name"),
        OsStr::new("one"),
        OsStr::new("--into"),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new("cat > \"$1\""),
        OsStr::new("sh"),
        out.as_os_str(),
    ]);
    assert_code(&o, 14);
    assert_eq!(fs::read(&out).unwrap(), b"", "nothing unverified piped");
}

#[test]
fn corrupt_pack_multi_chunk_emits_only_a_verified_prefix() {
    let r = TestRepo::small_chunks();
    let data = random_bytes(6 * 1024 * 1024, 12);
    r.backup_bytes("big", &data, &[]);
    let packs = r.pack_files();
    assert!(
        packs.len() >= 3,
        "expected several packs, got {}",
        packs.len()
    );
    // damage each pack in turn (on a copy of the repository state)
    for pack in &packs {
        let orig = fs::read(pack).unwrap();
        flip_byte(pack, 100);
        let pack_id = file_name(pack);
        let o = r.run(&["dump", "--name", "big"]);
        assert_code(&o, 14);
        let err = stderr_of(&o);
        assert!(
            err.contains(&pack_id),
            "stderr should name pack {pack_id}: {err}"
        );
        assert!(
            o.stdout.len() < data.len() && data.starts_with(&o.stdout),
            "dump wrote {} bytes that are not a verified prefix of the stream",
            o.stdout.len()
        );
        fs::write(pack, orig).unwrap();
    }
    assert_eq!(r.dump(&["--name", "big"]), data, "repaired");

    // a truncated pack
    let pack = &packs[packs.len() / 2];
    let len = fs::metadata(pack).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let o = r.run(&["dump", "--name", "big"]);
    assert_code(&o, 14);
    assert!(data.starts_with(&o.stdout) && o.stdout.len() < data.len());
}

#[test]
fn corrupt_pack_in_tree_restore_is_refused() {
    let r = TestRepo::small_chunks();
    let src = r.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f.bin"), random_bytes(3_000_000, 21)).unwrap();
    r.backup_path("t", &src);
    let packs = r.pack_files();
    let pack = &packs[0];
    flip_byte(pack, 100);
    let dst = r.path("dst");
    let o = r.restore_to("t", &dst, &[]);
    assert_refused_naming(&o, pack);
    if let Ok(got) = fs::read(dst.join("f.bin")) {
        let want = fs::read(src.join("f.bin")).unwrap();
        assert!(want.starts_with(&got) && got.len() < want.len());
    }
}

/// Restore creates files on several threads and fills them out of order, so
/// a tree restore stopped by a damaged pack must remove every file it had
/// not finished: what is left is only whole files, never one with a hole.
#[test]
fn failed_tree_restore_leaves_only_whole_files() {
    let r = TestRepo::small_chunks();
    let src = r.path("src");
    let file = |d: u64, f: u64| {
        let dir = src.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("f{f:02}")),
            random_bytes(20_000, d * 100 + f),
        )
        .unwrap();
    };
    // the first file in tree order goes alone into the first pack: damaged,
    // it stops the restore while the files after it are being created
    file(0, 0);
    r.backup_path("t", &src);
    let packs = r.pack_files();
    assert_eq!(packs.len(), 1);
    let pack = &packs[0];
    let mut total = 1;
    for d in 0..8u64 {
        for f in 0..20u64 {
            if (d, f) != (0, 0) {
                file(d, f);
                total += 1;
            }
        }
    }
    r.backup_path("t", &src);
    // inside the file's 20 kB blob whether the small tree blob is before it or after
    flip_byte(pack, 15_000);
    let dst = r.path("dst");
    let o = r.restore_to("t", &dst, &[]);
    assert_refused_naming(&o, pack);
    let mut left = 0;
    for p in walk(&dst) {
        if p.is_file() {
            let rel = p.strip_prefix(&dst).unwrap();
            assert_same_file(&src.join(rel), &p);
            left += 1;
        }
    }
    assert!(left < total, "the damaged file cannot have been restored");
}

#[test]
fn corrupt_pack_header_with_rebuilt_index_is_reported() {
    let r = TestRepo::small_chunks();
    let data = random_bytes(10_000, 31);
    r.backup_bytes("one", &data, &[]);
    let pack = r.pack_files().remove(0);
    let len = fs::metadata(&pack).unwrap().len();
    flip_byte(&pack, len - 20); // inside the encrypted header
    fs::remove_file(r.repo.join("index/index.sqlite")).unwrap();
    let o = r.run(&["dump", "--name", "one"]);
    assert_refused_naming(&o, &pack);
    assert!(o.stdout.is_empty());
}

#[test]
fn deleted_index_is_rebuilt() {
    let r = TestRepo::small_chunks();
    let data = random_bytes(3_000_000, 41);
    r.backup_bytes("s", &data, &["--tag", "t1"]);
    let src = r.path("src");
    fs::create_dir_all(src.join("x/y")).unwrap();
    fs::write(src.join("x/y/f"), random_bytes(500_000, 42)).unwrap();
    fs::write(src.join("g"), b"g").unwrap();
    r.backup_path("tree", &src);
    let snaps_before = r.snapshots(&[]);

    let index = r.repo.join("index/index.sqlite");
    assert!(index.exists());
    fs::remove_file(&index).unwrap();
    assert_eq!(r.dump(&["--name", "s"]), data);
    assert!(index.exists(), "the index is recreated");
    let dst = r.path("dst");
    let o = r.restore_to("tree", &dst, &[]);
    assert_ok(&o);
    assert_trees_equal(&src, &dst, CompareOpts::all());

    fs::remove_file(&index).unwrap();
    assert_eq!(
        r.snapshots(&[]),
        snaps_before,
        "same listing from a rebuilt index"
    );
    assert_eq!(r.snapshots(&["--tag", "t1"]).len(), 1);

    // and dedup still works against the rebuilt index
    fs::remove_file(&index).unwrap();
    let j = r.backup_bytes("s", &data, &[]);
    assert_eq!(u64_of(&j, "chunks_new"), 0, "{j}");
}

#[test]
fn swapped_snapshot_files_fail_authentication() {
    let r = TestRepo::small_chunks();
    let a = r.backup_bytes("db", b"snapshot A contents", &[]);
    let b = r.backup_bytes("db", b"snapshot B contents", &[]);
    let c = r.backup_bytes("db", b"snapshot C untouched", &[]);
    let (ida, idb, idc) = (
        a["snapshot"].as_str().unwrap().to_string(),
        b["snapshot"].as_str().unwrap().to_string(),
        c["snapshot"].as_str().unwrap().to_string(),
    );
    let dir = r.repo.join("snapshots");
    let (pa, pb): (PathBuf, PathBuf) = (dir.join(&ida), dir.join(&idb));
    let tmp = dir.join("swap.tmp");
    fs::rename(&pa, &tmp).unwrap();
    fs::rename(&pb, &pa).unwrap();
    fs::rename(&tmp, &pb).unwrap();

    // with the existing index: using either fails, nothing is printed
    for id in [&ida, &idb] {
        let o = r.run(&["dump", &id[..12]]);
        assert_code(&o, 14);
        assert!(o.stdout.is_empty(), "wrong data shown: {:?}", stdout_of(&o));
        let err = stderr_of(&o);
        assert!(err.contains("authentication"), "{err}");
        let o = r.run(&["ls", &id[..12]]);
        assert_code(&o, 14);
    }
    assert_eq!(r.dump(&[&idc[..12]]), b"snapshot C untouched");

    // with a rebuilt index: the swapped ones are not listed, with a warning
    fs::remove_file(r.repo.join("index/index.sqlite")).unwrap();
    let o = r.run(&["snapshots", "--json"]);
    assert_ok(&o);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![idc.as_str()]);
    let err = stderr_of(&o);
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains(&ida) && err.contains(&idb), "{err}");
    for id in [&ida, &idb] {
        let o = r.run(&["dump", &id[..12]]);
        assert!(!o.status.success());
        assert!(o.stdout.is_empty());
    }
    assert_eq!(r.dump(&["latest"]), b"snapshot C untouched");
}

#[test]
fn skipped_entries_give_exit_3_but_a_usable_snapshot() {
    let r = TestRepo::small_chunks();
    let src = r.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("kept.txt"), b"kept").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("app.sock")).unwrap();
    let mut c = r.cmd();
    c.args(["backup", "-n", "vol", "--json"]).arg(&src);
    let o = output_within(c, Duration::from_secs(60));
    assert_code(&o, 3);
    let j = parse_json_line(&o);
    assert_eq!(u64_of(&j, "warnings"), 1, "{j}");
    let err = stderr_of(&o);
    assert!(
        err.contains("app.sock"),
        "the warning names the skipped entry: {err}"
    );
    assert_eq!(r.snapshot_ids().len(), 1, "the snapshot is saved");
    let dst = r.path("dst");
    let o = r.restore_to("vol", &dst, &[]);
    assert_ok(&o);
    assert_eq!(fs::read(dst.join("kept.txt")).unwrap(), b"kept");
    assert!(!dst.join("app.sock").exists());
}

/// `latest~N` with N = usize::MAX overflows `back + 1` in `select::select`:
/// a panic (exit 101 with a backtrace) instead of "no snapshot" (exit 13).
#[test]
fn huge_latest_offset_is_not_found_not_a_panic() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("x", b"data", &[]);
    let o = r.run(&["dump", "latest~18446744073709551615"]);
    assert!(!stderr_of(&o).contains("panicked"), "{}", stderr_of(&o));
    assert_code(&o, 13);
}

#[test]
fn init_with_out_of_range_kdf_is_a_usage_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let mut c = bare_cmd();
    c.env("COFFRE_PASSWORD", "pw")
        .args(["init", "--repo"])
        .arg(&repo)
        .args([
            "--kdf-memory",
            "1",
            "--kdf-iterations",
            "1",
            "--kdf-parallelism",
            "1",
        ]);
    let o = output_within(c, std::time::Duration::from_secs(30));
    assert_code(&o, 2);
    assert!(
        stderr_of(&o).contains("invalid KDF parameters"),
        "{}",
        stderr_of(&o)
    );
    assert!(
        !repo.exists(),
        "a failed init left {} behind",
        repo.display()
    );
}
