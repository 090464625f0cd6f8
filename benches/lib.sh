# Shared by the benchmark scripts (sourced): logging, GNU time, the coffre binary.
# Expects ROOT (this checkout), COFFRE (the binary) and COFFRE_GIVEN (set when the
# caller named a binary, which is then not built).

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# /usr/bin/time -f for wall time and peak RSS
need_gnu_time() {
  [ -x /usr/bin/time ] && return 0
  log "installing GNU time"
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
  else
    sudo apt-get install -y -qq time >/dev/null
  fi
}

# build target/release/coffre unless SKIP_BUILD=1 or COFFRE was given; it must exist
build_coffre() {
  if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "$COFFRE_GIVEN" ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
  fi
  [ -x "$COFFRE" ] || die "no coffre binary at $COFFRE"
}
