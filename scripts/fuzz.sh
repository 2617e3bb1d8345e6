#!/usr/bin/env bash
# Coverage-guided fuzzing of everything that reads octets from outside (Sources/Fuzzing), with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     fuzz each target (default: all) for SECONDS (default 60)
#   FUZZ_MERGE=1 scripts/fuzz.sh ...          afterwards, merge what was found into fuzz/corpus/TARGET
#   FUZZ_RUNS=N scripts/fuzz.sh ...           N inputs per target with a fixed seed instead of a time
#                                             limit: the same inputs every run (what CI does)
#   FUZZ_RUNS=N FUZZ_SEED=0 scripts/fuzz.sh   N inputs per target from a fresh random seed (a campaign)
#   FUZZ_NO_BUILD=1 scripts/fuzz.sh ...       use the driver as last built (a second campaign on the other core)
#
# Each target's figures (inputs run, rate, coverage, corpus) are printed and appended to
# .build/fuzz-work/results.tsv, for docs/fuzzing.md.
#
# Inputs that break something are copied to fuzz/corpus/TARGET/crash-* (commit them with the fix: the
# unit tests replay that folder) and the script exits 1. Work files live under .build/fuzz-work.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"; shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(ike-message ike-responder ike-auth ike-protected ike-intermediate ethernet-bridge terminal-agent configuration-text revocation-data); fi

if [ "${FUZZ_NO_BUILD:-0}" = 1 ]; then
    # A second campaign beside one that built the driver (a target per core): building again would race it.
    echo "fuzz: using the driver already built (FUZZ_NO_BUILD=1)"
else
    echo "fuzz: building the libFuzzer driver (release, -sanitize=fuzzer)"
    # The build plan is made again each time: a stale one misses source files added to the main package.
    rm -f fuzz/.build/release.yaml fuzz/.build/build.db
    swift build --package-path fuzz -c release -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld
fi
binary="fuzz/.build/release/ikeproxy-fuzz"
status=0
for target in "${targets[@]}"; do
    work=".build/fuzz-work/$target"
    rm -rf "$work"; mkdir -p "$work/corpus" "$work/artifacts" "fuzz/corpus/$target"
    cp -r "fuzz/corpus/$target/." "$work/corpus/" 2>/dev/null || true
    if [ -n "${FUZZ_RUNS:-}" ]; then amount="$FUZZ_RUNS inputs"; else amount="${seconds}s"; fi
    echo "fuzz: $target for $amount ($(ls "$work/corpus" | wc -l) committed inputs)"
    set +e
    if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}"); else limit=(-max_total_time="$seconds"); fi
    # The Swift runtime's backtracer would take SIGABRT from libFuzzer, which then keeps no input.
    SWIFT_BACKTRACE=enable=no IKEPROXY_FUZZ_TARGET="$target" IKEPROXY_FUZZ_SEEDS="$work/corpus" "$binary" "${limit[@]}" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/artifacts/" "$work/corpus" > "$work/log" 2>&1
    code=$?
    set -e
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "$work/log" | sed "s/^/fuzz: $target /"
    # libFuzzer's last status line holds the coverage: edges ("cov") and features ("ft") reached.
    last=$(grep -E "^#[0-9]+.*cov: " "$work/log" | tail -1 || true)
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last"); ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$work/log"); rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$work/log")
    echo "fuzz: $target coverage: ${cov:-?} edges, ${ft:-?} features"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$(ls "$work/corpus" | wc -l)" >> .build/fuzz-work/results.tsv
    if [ $code -ne 0 ] || [ -n "$(ls "$work/artifacts")" ]; then
        echo "fuzz: $target FAILED (exit $code); the input is kept in fuzz/corpus/$target:"
        grep -E "ikeproxy-fuzz:|ERROR|Fatal error|SUMMARY" "$work/log" | head -5
        for artifact in "$work/artifacts"/*; do [ -e "$artifact" ] && cp "$artifact" "fuzz/corpus/$target/$(basename "$artifact")" && echo "  fuzz/corpus/$target/$(basename "$artifact")"; done
        status=1
    elif [ "${FUZZ_MERGE:-0}" = 1 ]; then
        mkdir -p "$work/merged"
        IKEPROXY_FUZZ_TARGET="$target" "$binary" -merge=1 "$work/merged" "fuzz/corpus/$target" "$work/corpus" > "$work/merge.log" 2>&1
        cp -n "$work/merged/"* "fuzz/corpus/$target/" 2>/dev/null || true
        echo "fuzz: $target corpus now $(ls "fuzz/corpus/$target" | wc -l) inputs"
    fi
done
exit $status
