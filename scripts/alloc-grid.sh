#!/usr/bin/env bash
# Issue 5's grid, allocations per step: `idmlp bench` for every
# B ∈ {1, 32, 100, 128, 512} × L ∈ {5, 20, 50} × {sgd, momentum, adam} × threads ∈ {1, 2}
# (2 timed steps after 2 warm-up steps each; the bench counts every thread's heap
# allocations). Prints one line per configuration and fails if any step allocated.
#
#   scripts/alloc-grid.sh            about 5 minutes on a 2-core machine
#
# The ms/step it prints come from 2 steps each: a smoke figure, not a benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release
bin=target/release/idmlp
field() { sed -n "s/^ *\"$1\": \([^,]*\),\{0,1\}$/\1/p"; }
failed=0
printf '%5s %3s %-9s %7s %12s %16s\n' B L optimizer threads ms/step allocs/step
for batch in 1 32 100 128 512; do
    for layers in 5 20 50; do
        for optimizer in sgd momentum adam; do
            for threads in 1 2; do
                json=$("$bin" bench --batch "$batch" --layers "$layers" --optimizer "$optimizer" \
                    --threads "$threads" --steps 2 --warmup 2 --json)
                ms=$(field ms_per_step <<<"$json")
                allocs=$(field allocs_per_step <<<"$json")
                printf '%5s %3s %-9s %7s %12.1f %16s\n' "$batch" "$layers" "$optimizer" "$threads" "$ms" "$allocs"
                if [ "$allocs" != "0.0" ]; then failed=1; fi
            done
        done
    done
done
if [ "$failed" -ne 0 ]; then
    echo "some configuration allocated in steady state" >&2
    exit 1
fi
echo "every configuration: 0 allocations per step"
