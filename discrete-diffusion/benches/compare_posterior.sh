#!/usr/bin/env bash
# Runs the Rust posterior benchmark and diffusers' scheduler on the same shapes, back to back.
# Usage: discrete-diffusion/benches/compare_posterior.sh [path/to/python-with-diffusers]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${1:-python3}
cargo bench -q -p discrete-diffusion --bench posterior -- --noplot 2>&1 | grep -E "^ithq|time:" | paste - - | awk '{printf "ours/%-34s median %8s %s\n", substr($1, 18), $5, $6}'
"$python" discrete-diffusion/benches/posterior_reference.py 2
