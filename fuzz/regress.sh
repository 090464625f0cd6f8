#!/usr/bin/env bash
# Replay every saved input under fuzz/regressions/<target>/ through its target
# once (no fuzzing). Exits 1 if any input still fails.
#
#   fuzz/regress.sh            all targets that have regressions
#   fuzz/regress.sh snapshot   one target
#
# FUZZ_FLAGS as for run-all.sh (default "-s none").
set -uo pipefail
cd "$(dirname "$0")"
flags=${FUZZ_FLAGS--s none}
failed=()
for dir in regressions/${1:-*}/; do
    t=$(basename "$dir")
    [ -n "$(ls -A "$dir" 2>/dev/null)" ] || continue
    for f in "$dir"*; do
        # shellcheck disable=SC2086
        if cargo fuzz run $flags "$t" "$f" >/dev/null 2>&1; then
            echo "ok     $t $f"
        else
            echo "FAILS  $t $f   (cargo fuzz run $flags $t fuzz/$f)"
            failed+=("$f")
        fi
    done
done
[ ${#failed[@]} -eq 0 ] || exit 1
