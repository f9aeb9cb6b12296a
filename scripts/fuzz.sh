#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, JOBS at a time. Each starts from its
# committed seed corpus (fuzz/corpus/<target>, small: written by fuzz/seed_corpora.py) plus the
# working corpus grown by earlier runs (target/fuzz-corpus/<target>, not committed). Crashes
# land in fuzz/artifacts/<target>/ and make the script fail: minimise one with
# `cargo +nightly fuzz tmin`, add it to the seed corpus and a regression test beside the code. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh 600                 # every target, 10 minutes each
#   JOBS=1 scripts/fuzz.sh 30 configs   # one target, 30 seconds
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET ...]}"
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
jobs="${JOBS:-2}"
cargo +nightly fuzz build -O >/dev/null
mkdir -p target/fuzz-logs
run() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "target/fuzz-corpus/$t"
    if cargo +nightly fuzz run -O "$t" "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -print_final_stats=1 >"target/fuzz-logs/$t.log" 2>&1; then
        printf '%-16s ok   %s runs, working corpus %s files\n' "$t" \
            "$(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/fuzz-logs/$t.log" | grep -o '[0-9]*$')" \
            "$(find "target/fuzz-corpus/$t" -type f | wc -l)"
    else
        printf '%-16s CRASH (see target/fuzz-logs/%s.log, fuzz/artifacts/%s/)\n' "$t" "$t" "$t"
        return 1
    fi
}
status=0
running=0
for t in "${targets[@]}"; do
    run "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit "$status"
