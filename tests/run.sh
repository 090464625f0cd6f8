#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the real-server tests need (when missing),
# then runs every test. Works as root on a fresh Debian 12 machine with a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo test --no-fail-fast "$@"
