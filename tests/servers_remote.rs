//! Self-checks of the throwaway remote-repository servers in
//! `tests/common/servers.rs`: the OpenSSH sshd (ssh and sftp with the
//! generated key and known_hosts, nothing else accepted) and the s3s-fs S3
//! server (signed PUT / GET / LIST with curl, objects as files on disk).
//!
//! Needs `openssh-server` and `s3s-fs` (tests/run.sh installs both); without
//! them the tests fail and say so.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::servers::{S3Server, Sshd, check};
use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn ssh(s: &Sshd, opts: &[String], remote_cmd: &str) -> Output {
    let mut c = Command::new("ssh");
    c.args(opts)
        .args(["-p", &s.port().to_string()])
        .arg(format!("{}@127.0.0.1", s.user()))
        .arg(remote_cmd)
        .envs(s.ssh_env())
        .stdin(Stdio::null());
    output_within(c, LIMIT)
}

#[test]
fn sshd_accepts_the_key_and_serves_sftp() {
    let s = Sshd::start();
    let work = tempfile::tempdir().unwrap();

    // the minimal client line: this key, this known_hosts, strict checking
    let mut c = Command::new("ssh");
    c.arg("-i")
        .arg(s.key_file())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", s.known_hosts().display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-p", &s.port().to_string()])
        .arg(format!("{}@127.0.0.1", s.user()))
        .args(["echo", "ok-from-sshd"])
        .stdin(Stdio::null());
    let o = output_within(c, LIMIT);
    assert!(o.status.success(), "ssh: {}\n{}", stderr_of(&o), s.log());
    assert_eq!(stdout_of(&o), "ok-from-sshd\n");
    let o = check(ssh(&s, &s.ssh_opts(), "true"), "ssh true (ssh_opts)");
    assert!(o.stdout.is_empty());

    // sftp -b: put, then get back, byte for byte
    let data = random_bytes(3 << 20, 0x55f7);
    let local = work.path().join("up.bin");
    fs::write(&local, &data).unwrap();
    let remote_dir = work.path().join("remote");
    fs::create_dir(&remote_dir).unwrap();
    let back = work.path().join("back.bin");
    let batch = work.path().join("batch");
    fs::write(
        &batch,
        format!(
            "put {} {}/a.bin\nls -l {}\nget {}/a.bin {}\n",
            local.display(),
            remote_dir.display(),
            remote_dir.display(),
            remote_dir.display(),
            back.display()
        ),
    )
    .unwrap();
    let mut c = Command::new("sftp");
    c.args(s.ssh_opts())
        .args(["-P", &s.port().to_string(), "-b"])
        .arg(&batch)
        .arg(format!("{}@127.0.0.1", s.user()))
        .envs(s.ssh_env())
        .stdin(Stdio::null());
    let o = output_within(c, LIMIT);
    assert!(o.status.success(), "sftp: {}\n{}", stderr_of(&o), s.log());
    assert_eq!(fs::read(remote_dir.join("a.bin")).unwrap(), data);
    assert_eq!(fs::read(&back).unwrap(), data);

    // the URL and the environment a client gets
    assert_eq!(
        s.url(&remote_dir),
        format!(
            "sftp://{}@127.0.0.1:{}{}",
            s.user(),
            s.port(),
            remote_dir.display()
        )
    );
    let env = s.ssh_env();
    let xdg = &env.iter().find(|(k, _)| k == "XDG_STATE_HOME").unwrap().1;
    assert!(Path::new(xdg).is_dir(), "{xdg}");
    assert!(xdg.len() < 40, "XDG_STATE_HOME {xdg} is not short");
}

#[test]
fn sshd_refuses_an_unknown_host_key_and_another_client_key() {
    let s = Sshd::start();
    let work = tempfile::tempdir().unwrap();

    // an empty known_hosts: strict checking refuses the host
    let empty = work.path().join("known_hosts");
    fs::write(&empty, "").unwrap();
    let opts: Vec<String> = s
        .ssh_opts()
        .into_iter()
        .map(|o| {
            if o.starts_with("UserKnownHostsFile=") {
                format!("UserKnownHostsFile={}", empty.display())
            } else {
                o
            }
        })
        .collect();
    let o = ssh(&s, &opts, "true");
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("Host key verification failed"),
        "{}",
        stderr_of(&o)
    );

    // a key that is not in authorized_keys
    let other = work.path().join("other_key");
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .stdin(Stdio::null());
    check(output_within(c, LIMIT), "ssh-keygen");
    let key = s.key_file().to_str().unwrap().to_string();
    let opts: Vec<String> = s
        .ssh_opts()
        .into_iter()
        .map(|o| {
            if o == key {
                other.to_str().unwrap().to_string()
            } else {
                o
            }
        })
        .collect();
    let o = ssh(&s, &opts, "true");
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("Permission denied"),
        "{}",
        stderr_of(&o)
    );
}

/// `curl` with SigV4 (the credentials go through a config file on stdin, not
/// the command line); returns the HTTP status and the body. Debian 12's curl
/// (7.88) signs the query string as given: percent-encode query values
/// (`prefix=a%2F`), or the signature does not match.
fn curl(s: &S3Server, secret: &str, args: &[&str], path: &str) -> (u16, Vec<u8>) {
    let work = tempfile::tempdir().unwrap();
    let body = work.path().join("body");
    let mut cfg = tempfile::tempfile().unwrap();
    writeln!(cfg, "user = \"{}:{}\"", s.access_key(), secret).unwrap();
    use std::io::Seek;
    cfg.rewind().unwrap();
    let mut c = Command::new("curl");
    c.args(["-sS", "-K", "-", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        // curl 7.88 does not send it, s3s requires it
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["-o", body.to_str().unwrap(), "-w", "%{http_code}"])
        .args(args)
        .arg(format!("{}{path}", s.endpoint()))
        .stdin(Stdio::from(cfg));
    let o = check(output_within(c, LIMIT), "curl");
    let code = stdout_of(&o).trim().parse().unwrap();
    (code, fs::read(&body).unwrap_or_default())
}

#[test]
fn s3_server_stores_objects_as_files() {
    let s = S3Server::start();
    let sk = s.secret_key().to_string();
    let b = s.bucket().to_string();
    let work = tempfile::tempdir().unwrap();

    // the bucket made with mkdir is a bucket
    let (code, body) = curl(&s, &sk, &[], "/");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(text.contains(&format!("<Name>{b}</Name>")), "{text}");
    let (code, _) = curl(&s, &sk, &["-I"], &format!("/{b}"));
    assert_eq!(code, 200);
    let (code, _) = curl(&s, &sk, &["-I"], "/no-such-bucket");
    assert_eq!(code, 404);

    // PUT, then the object is the file data_dir/BUCKET/KEY
    let data = random_bytes(1 << 20, 0x53);
    let up = work.path().join("up.bin");
    fs::write(&up, &data).unwrap();
    let key = "packs/ab/obj.bin";
    let put = ["-X", "PUT", "--data-binary", &format!("@{}", up.display())];
    let (code, body) = curl(&s, &sk, &put, &format!("/{b}/{key}"));
    assert_eq!(code, 200, "{}\n{}", String::from_utf8_lossy(&body), s.log());
    assert_eq!(s.object_path(key), s.data_dir().join(&b).join(key));
    assert_eq!(fs::read(s.object_path(key)).unwrap(), data);

    // GET it back; LIST shows it
    let (code, got) = curl(&s, &sk, &[], &format!("/{b}/{key}"));
    assert_eq!(code, 200);
    assert!(got == data, "GET returned other bytes");
    let (code, body) = curl(&s, &sk, &[], &format!("/{b}?list-type=2&prefix=packs%2F"));
    assert_eq!(code, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(text.contains(&format!("<Key>{key}</Key>")), "{text}");

    // If-None-Match: * is enforced
    let mut put_once = put.to_vec();
    put_once.extend(["-H", "If-None-Match: *"]);
    let (code, _) = curl(&s, &sk, &put_once, &format!("/{b}/{key}"));
    assert_eq!(code, 412);
    let (code, _) = curl(&s, &sk, &put_once, &format!("/{b}/other"));
    assert_eq!(code, 200);

    // a file deleted on disk is a missing object
    fs::remove_file(s.object_path(key)).unwrap();
    let (code, _) = curl(&s, &sk, &[], &format!("/{b}/{key}"));
    assert_eq!(code, 404);

    // a wrong secret key is refused
    let (code, _) = curl(&s, "wrong-secret", &[], &format!("/{b}/other"));
    assert_eq!(code, 403);

    // what a client process gets
    let env = s.env();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("AWS_ACCESS_KEY_ID"), s.access_key());
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), s.secret_key());
    assert_eq!(get("AWS_REGION"), "us-east-1");
    assert_eq!(get("AWS_ENDPOINT_URL"), s.endpoint());
}
