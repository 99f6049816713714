#!/usr/bin/env bash
# Runs each fuzz target for a bounded time on the stable toolchain and reports the
# executions; a crash stops the script with the artifact's path and what to do next.
#
#   fuzz/run.sh [SECONDS] [TARGET ...]     default: 300 s each, every target
#
# Stable needs no sanitizer (`-s none`): the targets are safe Rust, so a bug shows as
# a panic, which libFuzzer catches. With a nightly toolchain installed,
# FUZZ_SANITIZER=address runs under AddressSanitizer instead.
# New inputs go to a scratch corpus (FUZZ_SCRATCH, default /tmp/idmlp-fuzz/TARGET);
# corpus/ stays the small committed seed set.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(idx_parse checkpoint_parse)
fi
sanitizer=${FUZZ_SANITIZER:-none}
toolchain=+stable
if [ "$sanitizer" != none ]; then
    toolchain=+nightly
fi

for target in "${targets[@]}"; do
    scratch=${FUZZ_SCRATCH:-/tmp/idmlp-fuzz}/$target
    mkdir -p "$scratch" "artifacts/$target"
    log=$scratch.log
    echo "== $target: ${seconds}s, sanitizer $sanitizer, scratch corpus $scratch"
    if ! cargo "$toolchain" fuzz run -s "$sanitizer" "$target" "$scratch" "corpus/$target" \
        -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 30 "$log"
        echo "!! $target crashed; the input is under fuzz/artifacts/$target/."
        echo "   Minimise it:  cargo $toolchain fuzz tmin -s $sanitizer $target <artifact>"
        echo "   Then commit the minimised file to fuzz/regressions/$target/ with the fix;"
        echo "   the stable test suite replays that directory."
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    echo "   corpus: $(find "$scratch" -type f | wc -l) inputs; full log: $log"
done
