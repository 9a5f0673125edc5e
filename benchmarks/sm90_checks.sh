#!/usr/bin/env bash
# The Hopper generation's GPU work in device calls of under 10 minutes each (16-core H200 machine):
#   source .device/env.sh; bash benchmarks/sm90_checks.sh check    # precompile, sm90 + cache GPU tests, mask check, sanitizer
#   source .device/env.sh; bash benchmarks/sm90_checks.sh cache    # KV-cache config tests (12 processes), then bench
#   source .device/env.sh; bash benchmarks/sm90_checks.sh bench    # split-K, KV-cache configs (decode, chunked prefill)
#   source .device/env.sh; bash benchmarks/sm90_checks.sh sweep    # tile / epilogue sweep
#   source .device/env.sh; bash benchmarks/sm90_checks.sh cpasync  # the cp.async K/V producer: tests, sanitizer, timings
#   source .device/env.sh; bash benchmarks/sm90_checks.sh paged    # sm90 over caches: tests, sanitizer, chunked prefill
#   source .device/env.sh; bash benchmarks/sm90_checks.sh chunked  # chunked prefill over caches: default vs sm80
#   source .device/env.sh; bash benchmarks/sm90_checks.sh grid     # [A/B of sweep flags], the prefill grid
#   source .device/env.sh; bash benchmarks/sm90_checks.sh abtests  # A/B timings first, then sm90 tests + sanitizer
# At most 8 files come back from $OUT per call: keep the logs few. Builds packed into .device/cache.tar.xz by
# benchmarks/device_cache.sh on the development machine are loaded instead of compiled.
# Logs and JSON land in $OUT; a short summary is printed last.
set -u
cd "$(dirname "$0")/.."
export CUTE_ATTENTION_CACHE_DIR=${CUTE_ATTENTION_CACHE_DIR:-$PWD/.cache/ca}
bash benchmarks/device_cache.sh unpack  # builds precompiled on the development machine, if .device/ has them
t0=$(date +%s)
left() { echo $(( t0 + ${BUDGET_S:-570} - $(date +%s) )); }  # seconds left of this device call
part() {  # name, pytest args...
  local name=$1; shift
  ( timeout "$(( $(left) - ${RESERVE_S:-0} ))" python3 -m pytest -q -p no:cacheprovider "$@" > "$OUT/part_$name.log" 2>&1 ) &
}
# every sm90 kernel shape (both epilogues, three groups, the late rescale, d192 / d256, paged PackGQA, persistent)
SM90_CASES="prefill_sm90_causal prefill_sm90_window_split prefill_sm90_d64_3groups prefill_sm90_d64_late
  prefill_sm90_d192 prefill_sm90_d256 decode_paged_sm90_pack_split prefill_sm90_persistent_split
  decode_paged_sm90_cp_async_split prefill_paged_sm90_cp_async_bs16 prefill_paged_sm90_cp_async_bs256_d64"
sanitize() {  # seconds kept back, case names...: memcheck, racecheck and synccheck side by side, in the background
  local keep=$1; shift
  local only=(); for c in "$@"; do only+=(--only "$c"); done
  for tool in memcheck racecheck synccheck; do
    ( timeout "$(( $(left) - keep ))" compute-sanitizer --tool $tool --report-api-errors no python3 \
        benchmarks/sanitizer_cases.py "${only[@]}" > "$OUT/sanitizer_$tool.log" 2>&1
      echo "$tool rc=$?" >> "$OUT/sanitizer_$tool.log" ) &
  done
}
summarize() {  # after wait: a line per part, then every log merged into parts.log (at most 8 files come back)
  cat "$OUT"/sanitizer_*.log > "$OUT/part_sanitizer.log" 2>/dev/null; rm -f "$OUT"/sanitizer_*.log
  for f in "$OUT"/part_*.log; do
    [ "$f" = "$OUT/part_sanitizer.log" ] || echo "$(basename "$f"): $(grep -E "passed|failed|error" "$f" | tail -1)"
  done
  echo "sanitizer: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|rc=" "$OUT/part_sanitizer.log" | tr '\n' ' ')"
  for f in "$OUT"/part_*.log; do echo "=== $(basename "$f" .log)"; cat "$f"; done >> "$OUT/parts.log"
  rm -f "$OUT"/part_*.log
}
ab_timings() {  # "d:tile[:flag,flag] ..." default flags: each tile against itself with each sweep flag (AB_ROUNDS)
  local entry d tile flags configs
  for entry in $1; do
    IFS=: read -r d tile flags <<< "$entry"
    flags=${flags:-$2}
    configs="$tile"
    for flag in ${flags//,/ }; do configs="$configs,$tile$flag"; done
    timeout "${AB_S:-100}" python3 benchmarks/sweep_sm90.py --dims "$d" --seqlens "${AB_SEQLENS:-2048,8192}" \
      --rounds "${AB_ROUNDS:-2}" --configs "$configs" >> "$OUT/ab.log" 2>&1
  done
  grep -E "^d[0-9]+ s" "$OUT/ab.log"
  echo "A/B done $(( $(date +%s) - t0 ))s"
}
chunked_timings() {  # cases: chunked prefill (256 query rows) over caches, the default against config sm80, per head dim
  for d in ${CHUNKED_DIMS:-128 64 256}; do
    timeout "$(( $(left) - 5 ))" python3 benchmarks/decode.py --config sm80 --sq 256 --cases "$1" --heads 32/8 \
      --head-dim "$d" --json "$OUT/chunked_d$d.json" > "$OUT/chunked.log" 2>&1
    echo "chunked d$d rc=$?"; tail -3 "$OUT/chunked.log"
  done
  rm -f "$OUT/chunked.log"
}
precompile_paged() {  # the sm90 builds over paged 16 / 64 / 256 and a contiguous cache that the cache tests use
  # shellcheck disable=SC2046
  timeout 150 python3 -m cute_attention precompile --target sm_90a $(bash benchmarks/device_cache.sh args paged) \
    -j "${PRECOMPILE_J:-16}" > "$OUT/precompile_paged.log" 2>&1
  echo "precompile (paged) rc=$? $(( $(date +%s) - t0 ))s: $(tail -1 "$OUT/precompile_paged.log")"
  rm -f "$OUT/precompile_paged.log"
}
sm90_tests() {  # sanitizer case names...: precompile, the sm90 GPU tests and the mask check, the sanitizer beside them
  precompile_paged &
  # shellcheck disable=SC2046
  timeout 150 python3 -m cute_attention precompile --target sm_90a $(bash benchmarks/device_cache.sh args sm90) -j 16 \
    > "$OUT/precompile.log" 2>&1
  echo "precompile rc=$? $(( $(date +%s) - t0 ))s: $(tail -1 "$OUT/precompile.log")"; rm -f "$OUT/precompile.log"
  wait
  part cache_sm90 tests/test_gpu_kvcache.py -k "cache_config and sm90"
  part cache_paged_a tests/test_gpu_kvcache.py -k "paged_matches and (bs16 or bs32)"
  part cache_paged_b tests/test_gpu_kvcache.py -k "paged_matches and (bs64 or bs128 or bs256)"
  part cache_other tests/test_gpu_kvcache.py -k "not paged_matches and not head_groups and not cache_config"
  part cache_groups tests/test_gpu_kvcache.py -k "head_groups"
  part matrix tests/test_gpu_attention.py -k "matrix and sm90"
  part other tests/test_gpu_attention.py -k "sm90 and not matrix and not knobs"
  part knobs_a tests/test_gpu_attention.py -k "knobs and bf16"
  part knobs_b tests/test_gpu_attention.py -k "knobs and fp16"
  part varlen tests/test_gpu_varlen.py -k "sm90"
  part split tests/test_gpu_split.py -k "sm90"
  part cp_async_pack tests/test_gpu_sm90_cp_async.py -k "pack_cpasync"
  part cp_async_m128 tests/test_gpu_sm90_cp_async.py -k "m128n128_cpasync"
  ( timeout "$(left)" python3 benchmarks/mask_quick_check.py > "$OUT/part_masks.log" 2>&1; rc=$?; \
    echo "$(grep -c '^ok' "$OUT/part_masks.log") passed, $(grep -c '^FAIL' "$OUT/part_masks.log") failed, rc=$rc" >> "$OUT/part_masks.log" ) &
  sanitize 0 "$@"
  wait
  summarize
}
case "${1:-check}" in
check)
  # shellcheck disable=SC2086
  sm90_tests $SM90_CASES prefill_paged_default_bs16 prefill_sm80_window_split prefill_simt
  ;;
cache)  # the KV-cache configs' GPU test (one process per case: each compiles its own builds, ~200 s), then the benches
  for cfg in sm80 sm90; do for d in 64 128 256; do for dt in fp16 bf16; do
    ( timeout "$(( $(left) - 200 ))" python3 -m pytest -q -p no:cacheprovider tests/test_gpu_kvcache.py \
        -k "cache_config and $dt-$d-$cfg" > "$OUT/cache_${cfg}_${d}_${dt}.txt" 2>&1; echo "$cfg d$d $dt rc=$?" \
        >> "$OUT/cache_${cfg}_${d}_${dt}.txt" ) &
  done; done; done
  wait
  cat "$OUT"/cache_*.txt > "$OUT/part_cache.log"; rm -f "$OUT"/cache_*.txt
  grep -E "passed|failed|rc=" "$OUT/part_cache.log" | paste - - | head -12
  ;&
bench)
  timeout "$(( $(left) - 150 ))" python3 benchmarks/splitk.py --json "$OUT/splitk.json" > "$OUT/splitk.log" 2>&1
  echo "splitk rc=$?"; tail -6 "$OUT/splitk.log"
  timeout "$(( $(left) - 70 ))" python3 benchmarks/decode.py --config sm90 --cases 1x131072,8x32768,128x1024 --heads 32/8 \
    --json "$OUT/decode_sm90.json" > "$OUT/decode_sm90.log" 2>&1
  echo "decode rc=$?"; tail -5 "$OUT/decode_sm90.log"
  timeout "$(( $(left) - 5 ))" python3 benchmarks/decode.py --config sm90 --sq 256 --cases 4x8192,16x2048 --heads 32/8 \
    --json "$OUT/chunked_sm90.json" > "$OUT/chunked_sm90.log" 2>&1
  echo "chunked prefill rc=$?"; tail -4 "$OUT/chunked_sm90.log"
  ;;
abtests)  # short of device time: the A/B timings first, then the sm90 GPU tests and the sanitizer until the budget ends
  # AB_TILES "d:tile ...", AB_FLAGS the sweep flags timed against each tile ("-noorder -olate"), AB_ROUNDS
  ab_timings "${AB_TILES:-256:128x80 128:128x128}" "${AB_FLAGS:--olate -nolpt}"
  # shellcheck disable=SC2086
  sm90_tests ${AB_SANITIZE:-prefill_sm90_causal prefill_sm90_window_split prefill_sm90_d64_3groups}
  ;;
cpasync)  # the cp.async producer's builds and GPU tests, its sanitizer cases; then it against TMA over paged caches
  CP="sm90_m64n128_pack_cpasync sm90_m128n128_cpasync"
  # shellcheck disable=SC2046
  timeout 150 python3 -m cute_attention precompile --target sm_90a $(bash benchmarks/device_cache.sh args cpasync) -j 16 \
    > "$OUT/precompile.log" 2>&1
  echo "precompile rc=$? $(( $(date +%s) - t0 ))s: $(tail -1 "$OUT/precompile.log")"; rm -f "$OUT/precompile.log"
  RESERVE_S=${RESERVE_S:-200}  # seconds kept for the timings
  for v in $CP; do for dt in fp16 bf16; do part "cp_${v%%_cpasync}_$dt" tests/test_gpu_sm90_cp_async.py -k "$v and $dt"; done; done
  sanitize "$RESERVE_S" decode_paged_sm90_cp_async_split prefill_paged_sm90_cp_async_bs16 \
    prefill_paged_sm90_cp_async_bs256_d64
  wait
  summarize
  echo "tests done $(( $(date +%s) - t0 ))s"
  timeout "$(( $(left) - 80 ))" python3 benchmarks/decode.py --config sm90 --compare sm90_m64n128_pack_cpasync \
    --cases 1x131072,8x32768,64x4096,128x1024 --heads 32/8 --json "$OUT/decode_cp.json" > "$OUT/decode_cp.log" 2>&1
  echo "decode rc=$?"; tail -6 "$OUT/decode_cp.log"; rm -f "$OUT/decode_cp.log"
  timeout "$(( $(left) - 5 ))" python3 benchmarks/decode.py --config sm90 --compare sm90_m128n128_cpasync --sq 256 \
    --cases 4x8192,16x2048 --heads 32/8 --json "$OUT/chunked_cp.json" > "$OUT/chunked_cp.log" 2>&1
  echo "chunked prefill rc=$?"; tail -4 "$OUT/chunked_cp.log"; rm -f "$OUT/chunked_cp.log"
  ;;
paged)  # sm90 over caches (the default for prefill over a paged cache): tests, sanitizer, chunked prefill sm90 / sm80
  precompile_paged
  RESERVE_S=${RESERVE_S:-150}  # seconds kept for the timings
  for d in 64 128 256; do for dt in fp16 bf16; do
    part "cache_${d}_$dt" tests/test_gpu_kvcache.py -k "cache_config and $dt-$d-sm90"
  done; done
  sanitize "$RESERVE_S" prefill_paged_default_bs16 prefill_paged_sm90_bs64 decode_paged_sm90_pack_split \
    prefill_paged_sm90_d256_bs32_split
  wait
  summarize
  echo "tests done $(( $(date +%s) - t0 ))s"
  chunked_timings 4x8192
  ;;
chunked)  # chunked prefill over caches, the default (sm90 on sm_90 GPUs) against config sm80, after a sanitizer pass
  sanitize 0 prefill_paged_default_bs16
  wait
  summarize
  chunked_timings 4x8192,16x2048
  ;;
grid)  # A/B timings of sweep flags when AB_TILES is set ("d:tile ...", AB_FLAGS, AB_ROUNDS), then the prefill grid
  [ -n "${AB_TILES:-}" ] && ab_timings "$AB_TILES" "${AB_FLAGS:--nobits}"
  timeout "$(( $(left) - 5 ))" python3 benchmarks/prefill.py --dims "${GRID_DIMS:-64,128,256}" --rounds "${GRID_ROUNDS:-3}" \
    --seqlens "${GRID_SEQLENS:-512,1024,2048,4096,8192,16384}" --dtype "${GRID_DTYPE:-bfloat16}" \
    --json "$OUT/prefill.json" > "$OUT/prefill.log" 2>&1
  echo "prefill rc=$?"; grep -E "^ +[0-9]+ +[0-9]+ +(True|False)" "$OUT/prefill.log"
  ;;
sweep)
  timeout 330 python3 benchmarks/sweep_sm90.py --dims 64,96,128,192,256 --seqlens 2048,8192 --rounds 2 \
    --json "$OUT/sweep_sm90.json" > "$OUT/sweep_sm90.log" 2>&1
  echo "sweep rc=$?"; grep -E "^ *[0-9]+ .*[0-9]" "$OUT/sweep_sm90.log" | tail -24
  ;;
esac
echo "total $(( $(date +%s) - t0 ))s"
