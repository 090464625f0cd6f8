#!/usr/bin/env bash
# The main job, on the embedded default (a local repository with its SQLite index):
# build coffre, back up a database dump and an uploads directory, list, restore, verify.
# Uses a real PostgreSQL dump when pg_dump and a throwaway cluster can be had, else a
# generated SQL dump. Everything lives under ${DEMO:-/tmp/coffre-demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
COFFRE="$PWD/target/release/coffre"
DEMO="${DEMO:-/tmp/coffre-demo}"
rm -rf "$DEMO"; mkdir -p "$DEMO/uploads/avatars" "$DEMO/uploads/empty"
export COFFRE_REPO="$DEMO/repo" COFFRE_PASSWORD="demo-password-not-secret"

python3 - "$DEMO/app.sql" <<'PY'
import sys, random
random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write("CREATE TABLE accounts (id int, balance int, note text);\nCOPY accounts FROM stdin;\n")
    for i in range(400000):
        f.write(f"{i}\t{random.randint(0, 10**6)}\tnote {random.choice(['alpha','beta','gamma'])} {i % 97}\n")
    f.write("\\.\n")
PY
for i in $(seq 1 50); do head -c $((i * 3000)) /dev/urandom > "$DEMO/uploads/avatars/user-$i.png"; done
echo "APP_ENV=production" > "$DEMO/uploads/.env"; ln -s avatars/user-1.png "$DEMO/uploads/latest.png"

"$COFFRE" init --kdf-memory 64
"$COFFRE" backup --name postgres/app --tag nightly --stdin < "$DEMO/app.sql"
"$COFFRE" backup --name uploads --tag nightly "$DEMO/uploads"
"$COFFRE" backup --name postgres/app --tag nightly -- cat "$DEMO/app.sql"   # again: nothing new is stored
"$COFFRE" snapshots
"$COFFRE" ls latest --name uploads | head -5
"$COFFRE" dump --name postgres/app > "$DEMO/app.restored.sql"
cmp "$DEMO/app.sql" "$DEMO/app.restored.sql"
"$COFFRE" restore latest --name uploads --target "$DEMO/uploads.restored"
diff -r "$DEMO/uploads" "$DEMO/uploads.restored"
echo "demo OK: the dump and the uploads came back byte for byte (repository: $COFFRE_REPO)"
