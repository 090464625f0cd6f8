#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the real-server tests need (when missing),
# and the s3s-fs S3 server (a ~4 min cargo build, once), then runs every test. Works as root on a
# fresh Debian 12 machine with a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v s3s-fs >/dev/null && [ ! -x "${HOME:-/root}/.cargo/bin/s3s-fs" ]; then
  echo "installing: s3s-fs (cargo install, about 4 minutes)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi
cargo test --no-fail-fast "$@"
