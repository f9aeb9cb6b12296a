#!/usr/bin/env bash
# Installs Intel MKL for the `mkl` cargo feature from the Python package index (the wheels
# mkl-static, mkl-include and intel-openmp: about 300 MB of downloads, 1.2 GB unpacked) into
# a folder outside the repository, and prints the environment to build with it:
#
#   scripts/install-mkl.sh [DIR]          # default: ../mkl next to the repository
#   export MKLROOT=DIR KMP_BLOCKTIME=0
#   cargo build --release --features vq-pipeline/mkl
#
# The shared OpenMP runtime is removed so that binaries link MKL and OpenMP statically and run
# anywhere. MKL is Intel's, under the Intel Simplified Software License: it is downloaded, never
# committed. KMP_BLOCKTIME=0 stops OpenMP worker threads from spinning after each call (they
# would compete with candle's threads).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$repo/../mkl}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
if ! ls "$dir"/mkl_static-*.data/data/lib/libmkl_core.a >/dev/null 2>&1; then
    wheels="$dir/wheels"
    mkdir -p "$wheels"
    python3 -m pip download --no-deps -q -d "$wheels" mkl-static mkl-include intel-openmp
    for w in "$wheels"/*.whl; do
        python3 -m zipfile -e "$w" "$dir"
    done
    rm -rf "$wheels"
fi
find "$dir" -name 'libiomp5*.so' -delete
find "$dir" -name 'libiomp5_db.so' -delete
echo "MKL is in $dir; build with:"
echo "  export MKLROOT=$dir KMP_BLOCKTIME=0"
echo "  cargo build --release --features vq-pipeline/mkl"
