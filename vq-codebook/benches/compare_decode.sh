#!/usr/bin/env bash
# Decode time of one 32x32 token grid -> 256x256 image at the ITHQ size (random weights):
# ours (candle, CPU f32) and diffusers (torch CPU f32), back to back in the same run (ours twice,
# before and after, because this machine's speed drifts).
# Usage, from the workspace root: vq-codebook/benches/compare_decode.sh [repeats]
# The dev profile compiles every dependency (candle, gemm) at opt-level 3, so the example runs at
# release speed without a release build of the dependency tree.
set -euo pipefail
repeats="${1:-5}"
threads="${THREADS:-$(nproc)}"
python="${REFERENCE_PYTHON:-python3}"
cargo build -q -p vq-codebook --example decode_time
RAYON_NUM_THREADS="$threads" ./target/debug/examples/decode_time "$repeats"
"$python" vq-codebook/benches/decode_reference.py "$threads" "$repeats"
RAYON_NUM_THREADS="$threads" ./target/debug/examples/decode_time "$repeats"
