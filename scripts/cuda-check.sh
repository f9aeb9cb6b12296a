#!/usr/bin/env bash
# Compile check of the CUDA build on a machine without a GPU: installs NVIDIA's compiler and
# headers from the Python package index (CUDA 13 wheels: `nvidia-cuda-nvcc` ships nvcc itself;
# the older `*-cu12` nvcc wheels carry only ptxas) into a venv outside the repository, then
# builds the whole workspace with `--features cuda`. candle's kernels are compiled to PTX for
# the compute capability in CUDA_COMPUTE_CAP (default 90: H100/H200).
#
#   scripts/cuda-check.sh [VENV_DIR]        # default: ../cuda-venv next to the repository
#
# About 3 GB of wheels on the first run; the build itself takes several minutes on 2 cores.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$repo/../cuda-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! ls "$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1; then
    "$venv/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-cccl \
        nvidia-cublas nvidia-curand nvidia-cuda-nvrtc
fi
cuda_root="$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13 | head -n 1)"
# The wheels keep CCCL's headers (cub, thrust, libcu++) in their own folder.
export CUDA_ROOT="$cuda_root" CUDA_PATH="$cuda_root" CUDA_TOOLKIT_ROOT_DIR="$cuda_root"
export PATH="$cuda_root/bin:$PATH"
export CPATH="$cuda_root/include:$cuda_root/include/cccl:${CPATH:-}"
export NVCC_PREPEND_FLAGS="-I$cuda_root/include/cccl ${NVCC_PREPEND_FLAGS:-}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# cudarc 0.19 knows CUDA up to 13.4; newer toolkits compile against its 13.4 API.
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13040}"
export LD_LIBRARY_PATH="$cuda_root/lib:${LD_LIBRARY_PATH:-}"
# Link stubs: the wheels hold versioned libraries only (libcublas.so.13) and no driver; a GPU
# machine has the real libcuda.so. For the link step we provide unversioned names and a
# libcuda.so stub that defines every driver symbol cudarc declares (the binaries are linked,
# not run, here).
stubs="$venv/link-stubs"
mkdir -p "$stubs"
for lib in cublas cublasLt cudart nvrtc; do ln -sf "$cuda_root/lib/lib$lib.so.13" "$stubs/lib$lib.so"; done
ln -sf "$(ls "$cuda_root"/lib/libcurand.so.* | head -n 1)" "$stubs/libcurand.so"
cudarc_sys="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | head -n 1 || true)"
if [ -z "$cudarc_sys" ]; then
    (cd "$repo" && cargo fetch --locked)
    cudarc_sys="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | head -n 1)"
fi
grep -oE '\bfn cu[A-Z][A-Za-z0-9_]*\(' "$cudarc_sys" | sed -E 's/fn (cu[A-Za-z0-9_]*)\(/int \1(void) { return 999; }/' | sort -u > "$stubs/libcuda_stub.c"
gcc -shared -fPIC -o "$stubs/libcuda.so" "$stubs/libcuda_stub.c"
export LIBRARY_PATH="$stubs:$cuda_root/lib:${LIBRARY_PATH:-}"
nvcc --version | tail -n 2
cd "$repo"
cargo build --workspace --all-targets --features vq-pipeline/cuda,experiments/cuda,discrete-diffusion/cuda,shape-world/cuda --locked
echo "cuda-check: the workspace builds with --features cuda (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)"
