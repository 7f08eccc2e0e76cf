#!/usr/bin/env bash
# On a GPU machine, in a built checkout: the benchmarks, the adapter and per-kernel report
# (bench/gpu-report.ts) and the test suite, with the experimental WebGPU features enabled. Logs go to
# $OUT (default ./gpu-check-out).
#   bash scripts/gpu-check.sh [report|tests|bench|quant]...   (default: report tests)
# `bench` runs bench/run.ts (what `npm run bench` runs) (PyTorch beside it when python3 imports torch with CUDA) and copies
# bench/RESULTS.md and the results JSON to $OUT. `quant` times the int8 and NF4 dequantizing matmuls
# against the f16 product at 2048x4096x4096 (bench/quant.bench.ts).
set -uo pipefail
out=${OUT:-gpu-check-out}
mkdir -p "$out"
export HUATUO_UNSAFE_APIS=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(report tests)
for step in "${steps[@]}"; do
  start=$(date +%s)
  case $step in
    report) timeout "${REPORT_TIMEOUT:-240}" node --conditions=source --import tsx bench/gpu-report.ts "$out" 2>&1 | tee "$out/report.log" ;;
    tests) timeout "${TESTS_TIMEOUT:-300}" node scripts/run-tests.mjs ${TEST_DIRS:-test} > "$out/tests.log" 2>&1
      echo "tests exit $?"; grep -E '^. (tests|pass|fail|skipped|cancelled) ' "$out/tests.log"
      sed -n '/failing tests:/,$p' "$out/tests.log" | grep '^✖' | head -40 ;;
    bench) timeout "${BENCH_TIMEOUT:-400}" node --conditions=source --import tsx bench/run.ts ${BENCH_ARGS:-} > "$out/bench.log" 2>&1
      echo "bench exit $?"; grep -E '^- |TFLOP|tokens/s|GB/s' "$out/bench.log" | tail -40
      cp bench/RESULTS.md "$out/RESULTS.md"; cp bench/results/*.json "$out/" 2>/dev/null ;;
    quant) timeout "${QUANT_TIMEOUT:-180}" node --conditions=source --import tsx bench/quant.bench.ts 2>&1 | tee "$out/quant.log" ;;
  esac
  echo "== $step: $(( $(date +%s) - start )) s"
done
