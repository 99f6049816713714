#!/usr/bin/env bash
# Regenerates docs/report.png: runs the default job (`idmlp` with no arguments: trains
# and interprets on the embedded MNIST sample) in a scratch directory, then renders its
# report.html in headless Chromium and saves a screenshot.
#
#   scripts/screenshot.sh [WIDTH HEIGHT]      default 1200 × 3300 CSS pixels
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
width=${1:-1200}
height=${2:-3300}
chromium=${IDMLP_CHROMIUM:-chromium}
command -v "$chromium" >/dev/null || { echo "needs chromium: apt-get install chromium" >&2; exit 1; }

cargo build --quiet --release
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && "$repo/target/release/idmlp")
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$scratch/profile" \
    --window-size="$width,$height" --screenshot="$repo/docs/report.png" \
    "file://$scratch/idmlp-out/report.html" 2>"$scratch/chromium.log" \
    || { cat "$scratch/chromium.log" >&2; exit 1; }
echo "wrote docs/report.png"
