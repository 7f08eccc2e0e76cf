#!/usr/bin/env bash
# On a GPU machine, in a built checkout (Node 20 with the `webgpu` package, and the Vulkan loader).
# Run this first; it gives the acceptance data in one command of about ACCEPTANCE_BUDGET + 30 seconds:
#   bash scripts/gpu-check.sh acceptance
#   bash scripts/gpu-check.sh [acceptance|report|tests|bench|quant|decode]...   (default: acceptance)
# Logs and rows go to $OUT (default ./gpu-check-out).
# `acceptance` runs `bench/run.ts --acceptance` (bench/gpu.bench.ts) within ACCEPTANCE_BUDGET seconds (default
# 420), in this order: matmul at LLaMA-7B's four products in f16 and f32, the LoRA step and greedy decoding at 2
# and 4 layers (extrapolated to 32), each row of ours followed by PyTorch's (+ transformers and PEFT, at 32
# layers too) on the same GPU; then the test suite, the per-kernel report and the decode variants while time
# is left. A part that cannot fit in what is left is skipped, and the output says so. Every row is appended
# to $OUT/rows.jsonl and $OUT/acceptance.md (the targets computed from the rows so far, and the table) the
# moment it is measured, so a run cut off by a time limit keeps all it measured. Files in $OUT: acceptance.log,
# rows.jsonl, acceptance.md, tests.log, report.log, gpu-report.json, decode-variants.log. ACCEPTANCE_ARGS adds
# flags of bench/run.ts (`--sections matmul,lora,decode,tests,report,variants`, `--no-torch`, `--tests test/tensor`).
# The other steps, each with its own time limit (*_TIMEOUT, seconds), measure the same and more one at a time
# and together take longer than one 10-minute command:
# `bench` runs bench/run.ts (what `npm run bench` runs) (PyTorch beside it when python3 imports torch with CUDA) and copies
# bench/RESULTS.md and the results JSON to $OUT. `report` is the adapter and per-kernel report
# (bench/gpu-report.ts). `tests` runs the test suite. `quant` times the int8 and NF4 dequantizing matmuls
# against the f16 product at 2048x4096x4096 (bench/quant.bench.ts). `decode` times the fused decode kernels
# against the separate ops (bench/decode-fused.bench.ts), then greedy decoding at LLaMA-7B width with 2 and 4
# layers, with the fused products and the step run ahead each on and off, and at 2 layers with an unmerged
# LoRA adapter (fused on and off), with sampling (run ahead on and off), and with an NF4 base and adapter
# (QLoRA; fused on and off) (bench/decode-width.bench.ts).
# The packed checkout lacks a few packages that some tests import; pack them with scripts/gpu-test-extras.sh
# and set GPU_TEST_EXTRAS to that archive for `acceptance` and `tests` to unpack them first.
set -uo pipefail
out=${OUT:-gpu-check-out}
mkdir -p "$out"
export HUATUO_UNSAFE_APIS=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(acceptance)
extras() { if [ -n "${GPU_TEST_EXTRAS:-}" ]; then tar -xJf "$GPU_TEST_EXTRAS" || echo "could not unpack $GPU_TEST_EXTRAS"; fi; }
for step in "${steps[@]}"; do
  start=$(date +%s)
  case $step in
    acceptance) extras
      budget=${ACCEPTANCE_BUDGET:-420}
      # The run stops itself at its budget; the timeout only guards against a hang past it.
      timeout -k 10 $((budget + 30)) node --conditions=source --import tsx bench/run.ts --acceptance --budget "$budget" --out "$out" ${ACCEPTANCE_ARGS:-} 2>&1 | tee "$out/acceptance.log"
      echo "acceptance exit ${PIPESTATUS[0]}" ;;
    report) timeout "${REPORT_TIMEOUT:-240}" node --conditions=source --import tsx bench/gpu-report.ts "$out" 2>&1 | tee "$out/report.log" ;;
    tests) extras
      timeout "${TESTS_TIMEOUT:-300}" node scripts/run-tests.mjs ${TEST_DIRS:-test} > "$out/tests.log" 2>&1
      echo "tests exit $?"; grep -E '^. (tests|pass|fail|skipped|cancelled) ' "$out/tests.log"
      sed -n '/failing tests:/,$p' "$out/tests.log" | grep '^✖' | head -40 ;;
    bench) timeout "${BENCH_TIMEOUT:-400}" node --conditions=source --import tsx bench/run.ts ${BENCH_ARGS:-} > "$out/bench.log" 2>&1
      echo "bench exit $?"; grep -E '^- |TFLOP|tokens/s|GB/s' "$out/bench.log" | tail -40
      cp bench/RESULTS.md "$out/RESULTS.md"; cp bench/results/*.json "$out/" 2>/dev/null ;;
    decode) timeout "${DECODE_TIMEOUT:-300}" node --conditions=source --import tsx bench/decode-fused.bench.ts 2>&1 | tee "$out/decode-fused.log"
      for layers in 2 4; do
        for fused in on off; do
          for pipelined in on off; do
            echo "-- layers $layers, fused $fused, pipelined $pipelined"
            timeout "${DECODE_TIMEOUT:-300}" node --conditions=source --import tsx bench/decode-width.bench.ts --layers "$layers" --tokens 32 --runs 3 --dtype f16 --fused "$fused" --pipelined "$pipelined" 2>&1
          done
        done
      done | tee "$out/decode-width.log"
      for extra in "--adapter --fused on" "--adapter --fused off" "--sample --pipelined on" "--sample --pipelined off" \
                   "--quantize nf4 --adapter --fused on" "--quantize nf4 --adapter --fused off"; do
        echo "-- layers 2, $extra"
        timeout "${DECODE_TIMEOUT:-300}" node --conditions=source --import tsx bench/decode-width.bench.ts --layers 2 --tokens 32 --runs 3 --dtype f16 $extra 2>&1
      done | tee -a "$out/decode-width.log" ;;
    quant) timeout "${QUANT_TIMEOUT:-180}" node --conditions=source --import tsx bench/quant.bench.ts 2>&1 | tee "$out/quant.log" ;;
    *) echo "unknown step $step: give acceptance, report, tests, bench, quant or decode" >&2; exit 2 ;;
  esac
  echo "== $step: $(( $(date +%s) - start )) s"
done
