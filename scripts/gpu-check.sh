#!/usr/bin/env bash
# GPU check, on a machine with an NVIDIA GPU, its driver and a CUDA toolkit (nvcc on PATH, or
# the PyPI toolkit that scripts/cuda-check.sh installs): the golden parity tests of every model
# crate on the GPU, then the comparison harness on the GPU (ours alone, quick mode), written to
# ${OUT:-target/gpu-check}.
#
#   scripts/gpu-check.sh            # CUDA device 0; VQ_TEST_DEVICE=cuda:1 for another
#
# The parity tests are the CPU's (reference_fixtures::test_device reads VQ_TEST_DEVICE), at the
# same tolerances; the pipeline test must still reproduce diffusers' tokens exactly from the
# replayed noise. About 10 minutes of build on 2 cores, a minute of tests.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-target/gpu-check}"
mkdir -p "$out"
if [ -z "${CUDA_COMPUTE_CAP:-}" ] && command -v nvidia-smi >/dev/null; then
    CUDA_COMPUTE_CAP="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)"
    export CUDA_COMPUTE_CAP
fi
nvidia-smi | tee "$out/nvidia-smi.txt" || true
export VQ_TEST_DEVICE="${VQ_TEST_DEVICE:-cuda}"
cargo test --release --locked --features cuda \
    -p clip-text -p vq-codebook -p vq-transformer -p vq-pipeline --test golden 2>&1 | tee "$out/golden.txt"
cargo run --release --locked -p vq-bench --features cuda -- compare --no-reference --quick \
    --device "$VQ_TEST_DEVICE" --out "$out/bench" 2>&1 | tee "$out/bench.txt"
