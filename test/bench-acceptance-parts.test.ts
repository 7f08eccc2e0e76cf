// The parts of the acceptance run that need no GPU: PyTorch's streamed lines (bench/torch_step.py --mode serve)
// read into rows, the worker that streams them, the targets computed from rows, the test suite's summary, and
// rows.jsonl read back after a cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { configFromPreset } from '@huatuo/llama';
import { decodeWeightBytes, GPU_SCALE, parseTorchLine, SMALL_SCALE, testsSummary, TorchWorker, torchRow } from '../bench/gpu.bench.ts';
import { acceptanceSummary, readRowsJsonl, type AcceptanceRow } from '../bench/report.ts';

// Lines torch_step.py --mode serve printed on this machine's CPU (Debian's torch 1.13, no transformers):
// `printf 'matmul f32 64,64,64\nmatmul f16 32,48,16\nstep 2\n' | python3 bench/torch_step.py --mode serve`,
// and `--device cuda` without CUDA.
const CAPTURED = {
  ready: `{"ready": true, "hf": false, "hf_error": "ModuleNotFoundError: No module named 'transformers'", "threads": 2, "torch": "1.13.0a0", "device": "cpu"}`,
  matmul: `{"item": "matmul f32 64,64,64", "ms": 0.02580900036264211, "tflops": 0.020314153691860688, "threads": 2, "torch": "1.13.0a0", "device": "cpu"}`,
  f16Failed: `{"item": "matmul f16 32,48,16", "error": "RuntimeError: \\"addmm_impl_cpu_\\" not implemented for 'Half'"}`,
  stepFailed: `{"item": "step 2", "error": "ModuleNotFoundError: No module named 'transformers'"}`,
  noCuda: `{"ready": false, "error": "torch 1.13.0a0: torch.cuda.is_available() is false"}`,
};
// The step and decode lines as run_step and run_decode print them on CUDA (their dicts with the item and
// info keys; no CUDA here to capture one), with the H200's figures of 2026-12-04.
const CUDA_STEP = `{"item": "step 32", "tokens_per_s": 12952.1, "ms_per_step": 158.12, "params": 6742609920, "peak_gib": 23.9, "threads": 16, "torch": "2.11.0+cu130", "device": "cuda", "gpu": "NVIDIA H200"}`;
const CUDA_DECODE = `{"item": "decode 2", "ms_per_token": 44.1, "threads": 16, "torch": "2.11.0+cu130", "device": "cuda", "gpu": "NVIDIA H200"}`;

test('streamed PyTorch lines become rows named as the matching huatuo rows; failures, warnings and half lines do not', () => {
  const ready = parseTorchLine(CAPTURED.ready)!;
  assert.equal(ready.ready, true);
  assert.equal(ready.hf, false);
  assert.equal(torchRow(ready, SMALL_SCALE, 'lavapipe'), null);
  const m = torchRow(parseTorchLine(`${CAPTURED.matmul}\r`)!, SMALL_SCALE, 'lavapipe')!;
  assert.deepEqual(
    { section: m.section, bench: m.bench, impl: m.impl, dtype: m.dtype, shape: m.shape, ms: m.ms, note: m.note },
    { section: 'matmul', bench: 'matmul', impl: 'pytorch-cpu', dtype: 'f32', shape: '64x64x64', ms: 0.02580900036264211, note: 'cpu; torch 1.13.0a0' },
  );
  assert.ok(Math.abs(m.gflops! - 20.314153691860688) < 1e-9);
  for (const failed of [CAPTURED.f16Failed, CAPTURED.stepFailed]) {
    const line = parseTorchLine(failed)!;
    assert.match(line.error!, /Half|transformers/);
    assert.equal(torchRow(line, SMALL_SCALE, 'lavapipe'), null);
  }
  assert.equal(parseTorchLine(CAPTURED.noCuda)!.ready, false);
  for (const other of ['', 'Some weights of LlamaForCausalLM were not initialized', '{"item": "matmul f32 64,64', '[1, 2]', '{"ms": 1}']) assert.equal(parseTorchLine(other), null, other);

  const step = torchRow(parseTorchLine(CUDA_STEP)!, GPU_SCALE, 'NVIDIA H200')!;
  assert.deepEqual(
    { section: step.section, bench: step.bench, impl: step.impl, shape: step.shape, ms: step.ms, layers: step.layers, tokens: step.tokens },
    { section: 'lora', bench: 'llama-7b LoRA step', impl: 'pytorch-cuda', shape: 'L32 B8 T256', ms: 158.12, layers: 32, tokens: 2048 },
  );
  assert.match(step.note!, /transformers \+ PEFT; 12952 tokens\/s; peak 23\.9 GiB; NVIDIA H200; torch 2\.11\.0\+cu130/);
  const decode = torchRow(parseTorchLine(CUDA_DECODE)!, GPU_SCALE, 'NVIDIA H200')!;
  assert.deepEqual({ section: decode.section, shape: decode.shape, ms: decode.ms, layers: decode.layers }, { section: 'decode', shape: 'L2 B1', ms: 44.1, layers: 2 });
  assert.equal(decode.weightBytes, decodeWeightBytes(configFromPreset('llama-7b', { numHiddenLayers: 2 }), 2));
});

test('a decoded token of LLaMA-7B in f16 reads 13.2 GB of projection and lm_head weights at 32 layers', () => {
  // Per layer 4 x 4096^2 + 3 x 4096 x 11008 weights, lm_head 32000 x 4096, two bytes each.
  assert.equal(decodeWeightBytes(configFromPreset('llama-7b'), 2), 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) * 2 + 32000 * 4096 * 2);
  assert.equal(decodeWeightBytes(configFromPreset('llama-7b'), 2), 13_214_154_752);
});

const row = (r: Partial<AcceptanceRow> & Pick<AcceptanceRow, 'section' | 'impl' | 'ms'>): AcceptanceRow => ({ bench: r.section, dtype: 'f16', shape: '-', gflops: null, gbps: null, adapter: 'NVIDIA H200', ...r });

test('the targets are computed from whatever rows exist, 32 layers extrapolated from 2 and 4 and said so', () => {
  const wb = (layers: number) => decodeWeightBytes(configFromPreset('llama-7b', { numHiddenLayers: layers }), 2);
  const rows: AcceptanceRow[] = [
    row({ section: 'roofline', impl: 'huatuo', ms: NaN, readGbps: 2000 }),
    row({ section: 'matmul', impl: 'huatuo', dtype: 'f16', shape: '2048x4096x4096', ms: 1, gflops: 23_000 }),
    row({ section: 'matmul', impl: 'pytorch-cuda', dtype: 'f16', shape: '2048x4096x4096', ms: 1, gflops: 550_600 }),
    row({ section: 'matmul', impl: 'huatuo', dtype: 'f32', shape: '4096x4096x4096', ms: 1, gflops: 31_000 }),
    row({ section: 'matmul', impl: 'pytorch-cuda', dtype: 'f32', shape: '4096x4096x4096', ms: 1, gflops: 50_000 }),
    row({ section: 'matmul', impl: 'huatuo', dtype: 'f32', shape: '2048x4096x4096', ms: 1, gflops: 14_600 }),
    row({ section: 'lora', impl: 'huatuo', layers: 2, tokens: 2048, ms: 100 }),
    row({ section: 'lora', impl: 'huatuo', layers: 4, tokens: 2048, ms: 120 }),
    row({ section: 'lora', impl: 'huatuo', layers: 32, tokens: 2048, ms: 400, extrapolated: true }),
    row({ section: 'lora', impl: 'pytorch-cuda', layers: 32, tokens: 2048, ms: 158 }),
    row({ section: 'decode', impl: 'huatuo', layers: 2, ms: 3, weightBytes: wb(2) }),
    row({ section: 'decode', impl: 'huatuo', layers: 4, ms: 4, weightBytes: wb(4) }),
    row({ section: 'decode', impl: 'pytorch-cuda', layers: 2, ms: 44 }),
    row({ section: 'decode', impl: 'pytorch-cuda', layers: 4, ms: 45 }),
  ];
  const text = acceptanceSummary(rows).join('\n');
  assert.match(text, /- matmul f16 2048x4096x4096 \(subgroup matrices where chosen\): 23\.0 TFLOP\/s = 4 % of PyTorch's 551 \(pytorch-cuda; target 40 %\): \*\*missed\*\*\./);
  assert.match(text, /- matmul f32 4096x4096x4096 \(SIMT; PyTorch without TF32\): 31\.0 TFLOP\/s = 62 % of PyTorch's 50\.0 \(pytorch-cuda; target 60 %\): met\./);
  assert.match(text, /- matmul f32 2048x4096x4096: 14\.6 TFLOP\/s; no PyTorch row\./);
  // 100 + 30 x (120 - 100) / 2 = 400 ms for 2048 tokens; PEFT 2048 tokens in 158 ms.
  assert.match(text, /- LoRA step at 32 layers: 400 ms = 5120 tokens\/s \(extrapolated from 100 \/ 120 ms at 2 \/ 4 layers\) = 40 % of PyTorch \+ PEFT's tokens\/s at 158 ms a step \(measured at 32 layers; target 30 %\): met\./);
  // 3 + 30 x 0.5 = 18 ms against 44 + 30 x 0.5 = 59 ms.
  assert.match(text, /- Greedy decode at 32 layers: 18\.0 ms a token = 55\.6 tokens\/s \(extrapolated from 3\.00 \/ 4\.00 ms at 2 \/ 4 layers\), 3\.28x the speed of transformers' generate at 59\.0 ms a token \(extrapolated from 44\.0 \/ 45\.0 ms at 2 \/ 4 layers; target 3x\): met\./);
  assert.match(text, /- Greedy decode reads 13\.2 GB of weights a token at 32 layers: 734 GB\/s = 37 % of the copy kernel's 2000 GB\/s read \(target 60 %\): \*\*missed\*\*\./);

  const partial = acceptanceSummary(rows.filter((r) => !(r.section === 'lora' && r.layers === 4) && r.impl !== 'pytorch-cuda')).join('\n');
  assert.match(partial, /- LoRA step: needs huatuo rows at 2 and 4 layers to extrapolate to 32\./);
  assert.match(partial, /- matmul f16 2048x4096x4096: 23\.0 TFLOP\/s; no PyTorch row\./);
  assert.match(partial, /no transformers generate rows\./);
  assert.match(acceptanceSummary([]).join('\n'), /^- matmul f16: no rows\.\n- matmul f32: no rows\./);
  const noisy = acceptanceSummary([row({ section: 'decode', impl: 'huatuo', layers: 2, ms: 14.2 }), row({ section: 'decode', impl: 'huatuo', layers: 4, ms: 13.4 })]).join('\n');
  assert.match(noisy, /not slower at 4 layers than at 2, so the figure is noise/);
});

test('rows.jsonl cut off in the middle of its last line reads as the rows before it', () => {
  const a = row({ section: 'matmul', impl: 'huatuo', ms: 1.5 });
  const b = row({ section: 'matmul', impl: 'pytorch-cuda', ms: 0.5 });
  const text = `${JSON.stringify(a)}\n${JSON.stringify(b)}\n${JSON.stringify(a).slice(0, 30)}`;
  assert.deepEqual(readRowsJsonl(text), [a, b]);
});

// A node:test spec report (Node 20) of a file with a passing test, a suite with a failing subtest and a skip.
const SPEC_LOG = `✔ adds (1.582569ms)
▶ group
  ✔ inner passes (0.192591ms)
  ✖ inner fails (9.815302ms)
    AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:

✖ group (10.670266ms)
﹣ skips (0.166672ms) # no GPU
ℹ tests 5
ℹ suites 0
ℹ pass 2
ℹ fail 2
ℹ cancelled 0
ℹ skipped 1
ℹ todo 0
ℹ duration_ms 408.205756

✖ failing tests:

test at spec.test.mjs:4:78
✖ inner fails (9.815302ms)
  AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:
`;

test("the test suite's summary gives its totals and failing tests, or what passed and failed before it was cut off", () => {
  assert.equal(testsSummary(SPEC_LOG), 'tests 5, pass 2, fail 2, cancelled 0, skipped 1, todo 0; failing: inner fails (spec.test.mjs:4:78)');
  assert.equal(testsSummary(SPEC_LOG.slice(0, SPEC_LOG.indexOf('✖ group'))), 'cut off before its totals: 2 passed, 1 failed so far');
});

/** A Python that imports torch: HUATUO_PYTHON, python3 or Debian's /usr/bin/python3; null when none does. */
function torchPython(): string | null {
  for (const py of [process.env.HUATUO_PYTHON, 'python3', '/usr/bin/python3']) {
    if (py && spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return py;
  }
  return null;
}

test('the PyTorch worker answers each item with its line as soon as it is measured, and goes on after a failed item', async (t) => {
  const py = torchPython();
  if (py === null) return t.skip('no Python here imports torch (set HUATUO_PYTHON to one that does)');
  const worker = new TorchWorker(py, ['--device', 'cpu', '--steps', '3']);
  try {
    const ready = await worker.ready(60_000);
    assert.ok(ready.ok, JSON.stringify(ready));
    const first = await worker.run('matmul f32 64,64,64', 60_000);
    assert.ok(Number(first.ms) > 0 && Number(first.tflops) > 0, JSON.stringify(first));
    assert.equal(torchRow(first, SMALL_SCALE, 'cpu')!.shape, '64x64x64');
    // The same process answers the next items: the first line came while it ran, not at its exit.
    const bad = await worker.run('matmul f32 1,2', 60_000);
    assert.match(bad.error!, /unknown item 'matmul f32 1,2'/);
    const second = await worker.run('matmul f32 96,64,32', 60_000);
    assert.equal(torchRow(second, SMALL_SCALE, 'cpu')!.shape, '96x64x32');
    if (!ready.hf) assert.match((await worker.run('step 2', 60_000)).error!, /transformers/);
  } finally {
    worker.close();
  }
  assert.match((await worker.run('matmul f32 8,8,8', 1000)).error!, /the PyTorch worker was stopped/);
});

test('a worker that cannot start says why', async () => {
  const missing = await new TorchWorker('/nonexistent/python3', []).ready(10_000);
  assert.deepEqual(missing, { ok: false, why: 'the PyTorch worker /nonexistent/python3: spawn /nonexistent/python3 ENOENT' });
  // Node given torch_step.py exits at once with an error, as a Python without torch exits at its import.
  const wrong = await new TorchWorker(process.execPath, []).ready(10_000);
  assert.ok(!wrong.ok && /^the PyTorch worker exited \(code 1\): .*Error/.test(wrong.why), JSON.stringify(wrong));
  assert.deepEqual(await new TorchWorker('false', []).ready(10_000), { ok: false, why: 'the PyTorch worker exited (code 1)' });
});
