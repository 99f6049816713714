#!/usr/bin/env bash
# Size of the minimal embedding build: examples/embed.rs with no crate features
# (no CLI, gzip or report code), release profile, stripped.
#
#   scripts/embed-size.sh            prints the stripped size; fails above the 600 KB budget
#
# Builds into target/embed-size/ so that the feature set of the normal build is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

budget=$((600 * 1024))
target_dir=target/embed-size
cargo build --quiet --release --no-default-features --example embed --target-dir "$target_dir"
built="$target_dir/release/examples/embed"
stripped="$target_dir/embed.stripped"
strip -o "$stripped" "$built"
size=$(stat -c %s "$stripped")
echo "embed (--no-default-features --release, stripped): $size bytes ($(( (size + 1023) / 1024 )) KB; budget $((budget / 1024)) KB)"
if [ "$size" -ge "$budget" ]; then
    echo "over budget" >&2
    exit 1
fi
