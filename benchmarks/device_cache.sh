#!/usr/bin/env bash
# A warm compile cache for the GPU machine, built on the development machine (no GPU needed).
#   DEVICE_PYTHON=python3.12 bash benchmarks/device_cache.sh pack SET...   # here: precompile, pack .device/cache.tar.xz
#   bash benchmarks/device_cache.sh unpack                                 # GPU machine: into the compile cache
#   bash benchmarks/device_cache.sh args SET                              # a SET's precompile arguments (sm90_checks.sh)
# SETs (each one `python -m cute_attention precompile` line, below): grid (the prefill grid's sm90 defaults),
# cpasync (tests/test_gpu_sm90_cp_async.py's builds), paged (the sm90 builds over caches the cache tests use), sm90
# (every sm90 variant over contiguous K/V, varlen included: ~700 builds, too many to carry); or `-- ARGS...`.
# The cache's fingerprint holds the Python minor version, the DSL's and TVM-FFI's versions and every package
# source file, so the builds are made in the GPU machine's environment: DEVICE_PYTHON
# (Python 3.12 with torch, numpy and setuptools) with the DSL bundle and wheels of .device/ on its path, and this
# tree installed into it (editable). Commit first: the GPU machine loads only entries of the same sources.
# The archive travels in .device/ (carry [".device"]); the whole carried tree must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=.device/cache.tar.xz
LIMIT=$((64 * 1024 * 1024))

precompile_set() {  # SET: the precompile arguments it stands for
  case "$1" in
    grid) echo "--variant sm90_m192n128 --variant sm90_m192n128_late --variant sm90_m128n128 --variant sm90_m128n80 \
      --head-dim 64 128 256 --dtype bfloat16 --mask none causal --lse no" ;;
    cpasync) echo "--variant sm90_m64n128_pack_cpasync --variant sm90_m128n128_cpasync \
      --kv paged16 paged32 paged64 paged128 paged256 --mask none causal window --lse yes --append" ;;
    paged) echo "--variant sm90_m128n128 --variant sm90_m128n64 --variant sm90_m64n128_pack --variant sm90_m64n64_pack \
      --head-dim 64 128 256 --kv paged16 paged64 paged256 seqlens --mask none causal window --lse yes --append" ;;
    sm90) echo "--config sm90 --mask none causal window --lse both --varlen" ;;
    *) echo "device_cache.sh: unknown set $1 (grid, cpasync, paged, sm90, or -- ARGS)" >&2; return 1 ;;
  esac
}

case "${1:-}" in
args)
  precompile_set "${2:-}"
  ;;
pack)
  shift
  py=${DEVICE_PYTHON:?set DEVICE_PYTHON to a Python 3.12 with torch, numpy and setuptools}
  ls .device/cute-dsl-*.tar.xz >/dev/null || { echo "no DSL bundle in .device/: run ../shared/device/stage.sh" >&2; exit 1; }
  site=${DEVICE_SITE:-${XDG_CACHE_HOME:-$HOME/.cache}/cute-attention-device-site}
  if [ ! -f "$site/.ok" ]; then
    rm -rf "$site" && mkdir -p "$site" && tar xJf .device/cute-dsl-*.tar.xz -C "$site"
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" .device/wheels/*.whl
    touch "$site/.ok"
  fi
  export PYTHONPATH="$site:$site/nvidia_cutlass_dsl/dsl_packages" CUTE_DSL_ARCH=sm_90a
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . > /dev/null
  work=${DEVICE_CACHE_DIR:-$(mktemp -d)}  # DEVICE_CACHE_DIR: build into (and pack all of) a directory kept between packs
  export CUTE_ATTENTION_CACHE_DIR=$work
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then
      shift; args=("$@"); set --
    else
      spec=$(precompile_set "$1"); read -ra args <<< "$spec"; shift
    fi
    "$py" -m cute_attention precompile --target sm_90a -j "${JOBS:-$(nproc)}" "${args[@]}" 2>&1 | tail -1
  done
  rm -f "$work"/*/*.lock
  tar cJf "$ARCHIVE" -C "$work" .
  [ -n "${DEVICE_CACHE_DIR:-}" ] || rm -rf "$work"
  carried=$(( $(du -sb .device | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ))
  echo "$ARCHIVE: $(du -h "$ARCHIVE" | cut -f1); .device and the tracked tree: $((carried / 1048576)) of 64 MiB"
  [ "$carried" -lt "$LIMIT" ] || { echo "over the 64 MiB a device call carries: pack fewer sets" >&2; exit 1; }
  ;;
unpack)
  [ -f "$ARCHIVE" ] || { echo "compile cache: no $ARCHIVE, every build compiles here"; exit 0; }
  read -r dir here <<< "$(python3 -c "from cute_attention.host import disk_cache as c; print(c.root(), c.fingerprint())")"
  mkdir -p "$dir" && tar xJf "$ARCHIVE" -C "$dir"
  if [ -d "$dir/$here" ]; then
    echo "compile cache: $(find "$dir/$here" -name '*.json' | wc -l) builds of fingerprint $here from $ARCHIVE"
  else
    echo "compile cache: $ARCHIVE holds $(ls "$dir" | tr '\n' ' ')but this machine's fingerprint is $here:" \
      "other sources or versions, every build compiles here"
  fi
  ;;
*)
  sed -n 2,5p "$0"; exit 2 ;;
esac
