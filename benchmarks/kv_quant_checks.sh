#!/usr/bin/env bash
# Quantized KV caches' GPU work in one device call of under 10 minutes (16-core H200 machine):
#   source .device/env.sh; bash benchmarks/kv_quant_checks.sh check   # GPU tests (17 processes), then sanitizer
#   source .device/env.sh; bash benchmarks/kv_quant_checks.sh bench   # decode grid: bf16 / int8 / int4 / fp8 caches
# The test parts run side by side so their compiles overlap; the head-groups decode test of the cache suite rides
# along (one process per group size). Logs land in $OUT as one parts.log (a line per part printed last).
set -u
cd "$(dirname "$0")/.."
export CUTE_ATTENTION_CACHE_DIR=${CUTE_ATTENTION_CACHE_DIR:-$PWD/.cache/ca}
bash benchmarks/device_cache.sh unpack
t0=$(date +%s)
left() { echo $(( t0 + ${BUDGET_S:-560} - $(date +%s) )); }
part() {  # name, seconds kept back, pytest args...
  local name=$1 keep=$2; shift 2
  ( timeout "$(( $(left) - keep ))" python3 -m pytest -q -p no:cacheprovider -s "$@" > "$OUT/part_$name.log" 2>&1
    echo "rc=$?" >> "$OUT/part_$name.log" ) &
}
QUANT_CASES="decode_int8_lookahead_split decode_int4_bs16 decode_fp8_split prefill_int4_over_cache append_int8_bs16
  append_fp8"
# four sm90 cases last sanitized before the mask-word change (they share its code with cases clean after it)
SM90_CASES="prefill_paged_sm90_d256_bs32_split decode_paged_sm90_pack_d256 prefill_sm90_tma_o_store
  varlen_sm90_split_gqa"
case "${1:-check}" in
  check)
    T=tests/test_gpu_kv_quant.py
    part bs16_32 200 $T -k "every_block_size and (bs16 or bs32)"
    part bs64_256 200 $T -k "every_block_size and (bs64 or bs128 or bs256)"
    for f in int8 int4 fp8 int8_f32; do part "formats_$f" 200 $T -k "formats_paged16 and $f]"; done
    for d in 64 96 192 256; do part "dims_$d" 200 $T -k "head_dims and $d-"; done
    part prefill 200 $T -k "prefill_over_cache or error_against"
    part append 200 $T -k "append"
    for g in 1 2 4 8 16; do part "head_groups_$g" 200 tests/test_gpu_kvcache.py -k "head_groups and gqa$g]"; done
    wait
    echo "tests done $(( $(date +%s) - t0 ))s"
    only=(); for c in $QUANT_CASES $SM90_CASES; do only+=(--only "$c"); done
    for tool in memcheck racecheck synccheck; do
      ( timeout "$(( $(left) - 5 ))" compute-sanitizer --tool $tool --report-api-errors no python3 \
          benchmarks/sanitizer_cases.py "${only[@]}" > "$OUT/part_sanitizer_$tool.log" 2>&1
        echo "rc=$?" >> "$OUT/part_sanitizer_$tool.log" ) &
    done
    wait ;;
  bench)
    ( timeout "$(( $(left) - 5 ))" python3 benchmarks/decode.py --heads 32/8 --kv-quant int8,int4,fp8 \
        --rounds "${ROUNDS:-3}" --json "$OUT/decode_kv_quant.json" > "$OUT/part_bench.log" 2>&1
      echo "rc=$?" >> "$OUT/part_bench.log" )
    sed -n '/^NVIDIA\|^step time/,$p' "$OUT/part_bench.log" ;;
  *) echo "usage: kv_quant_checks.sh check|bench" >&2; exit 2 ;;
esac
for f in "$OUT"/part_*.log; do
  echo "$(basename "$f" .log): $(grep -E "passed|failed|error|ERROR SUMMARY|RACECHECK SUMMARY" "$f" | tail -1) $(tail -1 "$f")"
done | tee "$OUT/summary.txt"
for f in "$OUT"/part_*.log; do echo "=== $(basename "$f" .log)"; cat "$f"; done > "$OUT/parts.log"
rm -f "$OUT"/part_*.log
