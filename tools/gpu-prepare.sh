#!/usr/bin/env bash
# Run on a machine with nvcc and the Debian -dev packages (not the GPU machine): builds the CUDA
# binaries and gathers what tools/gpu-check.sh needs on the GPU machine, which has CUDA and PyTorch
# but no Debian libraries, into .gpu-carry/ (ignored by git through .git/info/exclude):
#   .gpu-carry/{mmgpt,tests/test_cuda,bench/cuda_ops}  and  .gpu-carry/debs/*.deb (runtime libraries)
# The tests read tests/fixtures/ from the working tree, which travels with every call. Then, with the
# device tool: run(command="bash tools/gpu-check.sh .gpu-carry", carry=[".gpu-carry"],
# timeout_s=540). BUILD (default build-cuda) is the build directory used here.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-cuda}
make BUILD="$B" -j"$(nproc)" "$B/mmgpt" "$B/tests/test_cuda" "$B/tests/test_device_model" "$B/bench/cuda_ops" "$B/bench/generate" "$B/bench/train"
C=.gpu-carry
rm -rf "$C"
mkdir -p "$C/tests" "$C/bench" "$C/debs"
cp "$B/mmgpt" "$C/"
cp "$B/tests/test_cuda" "$B/tests/test_device_model" "$C/tests/"
cp "$B/bench/cuda_ops" "$B/bench/generate" "$B/bench/train" "$C/bench/"
# The packages that own the libraries the binaries load, less those every Linux with CUDA has.
pkgs=$(ldd "$C/mmgpt" "$C/tests/test_cuda" | awk '/=> \// {print $3}' | sort -u | while read -r l; do
  dpkg -S "$(readlink -f "$l")" 2>/dev/null | cut -d: -f1 | head -1
done | sort -u | grep -v -x -E 'libc6|libgcc-s1|libstdc\+\+6' || true)
echo "runtime packages: $pkgs"
(cd "$C/debs" && apt-get download $pkgs >/dev/null)
# The PyTorch anchors of issue 16 (../shared/anchors), for GPU_CHECK_ANCHORS=1.
[ -d ../shared/anchors ] && cp -r ../shared/anchors "$C/anchors"
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >>.git/info/exclude
du -sh "$C"
echo 'next, with the device tool: run(command="bash tools/gpu-check.sh .gpu-carry", carry=[".gpu-carry"], timeout_s=540)'
