#!/usr/bin/env bash
# The GPU test suite in twenty-two parallel parts on one GPU machine (the parts compile their kernels side by side on
# its cores; the whole suite took 462 s on the H200 with 16 cores). The parts' logs end up in $OUT/pytest_gpu.log,
# a summary is printed last.
#   source .device/env.sh; bash benchmarks/gpu_suite.sh
set -u
cd "$(dirname "$0")/.."
bash benchmarks/device_cache.sh unpack  # builds precompiled on the development machine, if .device/ has them
run() {  # name, pytest args...
  local name=$1; shift
  ( echo "== $name: $*"; timeout 540 python3 -m pytest -q -p no:cacheprovider "$@" 2>&1 | tail -40 ) > "$OUT/part_$name.log" 2>&1 &
}
run a1 tests/test_gpu_attention.py -k "matrix and sm80"
run a2 tests/test_gpu_attention.py -k "matrix and sm75"
run a3 tests/test_gpu_attention.py -k "matrix and (sm70 or simt)"
run a6 tests/test_gpu_attention.py -k "matrix and sm90"
run a4 tests/test_gpu_attention.py tests/test_compose_example.py -k "not matrix and not prologue and not knobs"
run a7 tests/test_gpu_attention.py -k "knobs"
run a5 tests/test_gpu_attention.py -k "prologue"
run s1 tests/test_gpu_split.py
run k1 tests/test_gpu_kvcache.py -k "paged_matches and (bs16 or bs32)"
run k2 tests/test_gpu_kvcache.py -k "paged_matches and (bs64 or bs128 or bs256)"
run k3 tests/test_gpu_kvcache.py -k "not paged_matches and not head_groups and not cache_config"
run k5 tests/test_gpu_kvcache.py -k "cache_config and sm80"
run k6 tests/test_gpu_kvcache.py -k "cache_config and sm90"
run k4 tests/test_gpu_kvcache.py -k "head_groups"
run v1 tests/test_gpu_varlen.py -k "not sm90 and (d64 or d96 or d128)"
run v2 tests/test_gpu_varlen.py -k "not sm90 and not (d64 or d96 or d128)"
run v3 tests/test_gpu_varlen.py -k "sm90"
run c1 tests/test_gpu_sm90_cp_async.py
run t1 tests/test_gpu_torch.py
run q1 tests/test_gpu_kv_quant.py -k "every_block_size or prefill_over_cache or error_against"
run q2 tests/test_gpu_kv_quant.py -k "formats_paged16 or append"
run q3 tests/test_gpu_kv_quant.py -k "head_dims"
wait
for f in "$OUT"/part_*.log; do head -1 "$f"; grep -E "passed|failed|error|Timeout|Error" "$f" | tail -3; done
cat "$OUT"/part_*.log > "$OUT/pytest_gpu.log" && rm "$OUT"/part_*.log
