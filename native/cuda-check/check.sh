#!/bin/bash
# Compile check of the CUDA build on a machine with nvcc but no cuBLAS (CI, development):
# every .cu file (the CUDA device, its kernels and the backend-consistency test) through nvcc
# against cuda-check/cublas_v2.h, and the CUDA build's device selector through the host
# compiler. Nothing is linked. Skips (exit 0) without nvcc.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
  echo "cuda compile check: skipped (no nvcc on this machine)"
  exit 0
fi
CUDA_INC=$(dirname "$(dirname "$(readlink -f "$NVCC")")")/include
root=$(cd .. && pwd)
NAPI_INC="$root/node_modules/node-api-headers/include"
NAA_INC="$root/node_modules/node-addon-api"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-std=c++17 -Isrc -Icuda-check -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS
       -DNODE_ADDON_API_DISABLE_DEPRECATED '-DADAPTERLENS_VERSION="check"' '-DADAPTERLENS_BACKEND="cuda"')
for f in src/engine/cuda/*.cu ../tests/cuda/*.cu; do
  [ -f "$f" ] || continue
  "$NVCC" "${flags[@]}" -arch=sm_90 --expt-relaxed-constexpr -Xcompiler -Wall -c "$f" -o "$out/$(basename "$f").o"
  echo "nvcc ok: $f"
done
for f in src/engine/cuda/*.cpp; do
  g++ "${flags[@]}" -I"$CUDA_INC" -Wall -Wextra -fsyntax-only "$f"
done
echo "cuda compile check: ok ($(ls src/engine/cuda/*.cu | wc -l) CUDA sources)"
