#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the real-server tests need (when missing),
# the s3s-fs S3 server (a ~4 min cargo build, once) and Azurite (Microsoft's Azure Storage emulator,
# from npm, with the Azure SDK for Python to create its container), then runs every test. Works as
# root on a fresh Debian 12 machine with a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v azurite-blob >/dev/null || command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v s3s-fs >/dev/null && [ ! -x "${HOME:-/root}/.cargo/bin/s3s-fs" ]; then
  echo "installing: s3s-fs (cargo install, about 4 minutes)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi
if ! command -v azurite-blob >/dev/null; then
  echo "installing: azurite 3.35.0 (npm)"
  npm install -g --no-fund --no-audit azurite@3.35.0 >/dev/null
fi
python3 -c 'import azure.storage.blob' 2>/dev/null || pip install -q azure-storage-blob
# free space, for a failure that turns out to be ENOSPC
df -h "${TMPDIR:-/tmp}" . | sed 's/^/disk: /'
cargo test --no-fail-fast "$@"
