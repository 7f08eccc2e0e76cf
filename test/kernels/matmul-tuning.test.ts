// The per-adapter matmul search: it checks every candidate against the CPU reference before timing it,
// refuses a variant that computes wrong results or whose pipeline cannot be created (with the reason in
// its report), and caches its choice and report on disk under the adapter.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  checkMatmulCandidates,
  decodeCandidates,
  matmulCandidates,
  matmulPlan,
  matmulTuningReport,
  Profiler,
  tensor,
  tuneMatmul,
  variantName,
  type MatmulTuningReport,
} from '@huatuo/tensor';
import { gpu, seededValues } from '../tensor/helpers.js';
import { wgslSources } from '@huatuo/tensor/internal';

const info = await gpu();
/** The candidate checks are what these tests are about: time them at the smallest scale. */
const timeBudget = process.env.HUATUO_MATMUL_TUNE_MS;

function quickTiming(): () => void {
  process.env.HUATUO_MATMUL_TUNE_MS = '1';
  return () => {
    if (timeBudget === undefined) delete process.env.HUATUO_MATMUL_TUNE_MS;
    else process.env.HUATUO_MATMUL_TUNE_MS = timeBudget;
  };
}

test('subgroup-matrix variants are candidates only for f16 x f16 -> f32 configs of an adapter with the feature and one subgroup size', () => {
  const configs = [
    { M: 16, N: 16, K: 16, componentType: 'f16', resultComponentType: 'f32' },
    { M: 16, N: 16, K: 16, componentType: 'f16', resultComponentType: 'f16' },
    { M: 8, N: 8, K: 8, componentType: 'f32', resultComponentType: 'f32' },
    { M: 32, N: 8, K: 16, componentType: 'f16', resultComponentType: 'f32' },
  ];
  const gpuLike = {
    ...info,
    features: new Set([...info.features, 'shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'] as const),
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    maxComputeInvocationsPerWorkgroup: 1024,
    maxComputeWorkgroupStorageSize: 32768,
    subgroupMatrixConfigs: configs,
  };
  const names = matmulCandidates(gpuLike).map(variantName);
  assert.deepEqual(
    names.filter((n) => n.startsWith('sgmat')),
    ['', ',direct'].flatMap((d) => ['64x64/32x32', '128x64/64x32', '128x128/64x32', '128x128/64x64', '64x64/64x64'].map((t) => `sgmat(16x16x16,sg=32,tile=${t}${d})`)),
  );
  const smallWorkgroupMemory = { ...gpuLike, maxComputeWorkgroupStorageSize: 16384 };
  assert.deepEqual(
    matmulCandidates(smallWorkgroupMemory).filter((v) => v.kernel === 'sgmat').map(variantName),
    ['', ',direct'].flatMap((d) => [`sgmat(16x16x16,sg=32,tile=64x64/32x32${d})`, `sgmat(16x16x16,sg=32,tile=64x64/64x64${d})`]),
  );
  assert.ok(names.includes('v4(tile=128)') && names.includes('v4(tile=64)'), names.join(', '));
  const without = { ...gpuLike, features: new Set([...gpuLike.features].filter((f) => f !== 'chromium-experimental-subgroup-matrix')) };
  assert.equal(matmulCandidates(without).filter((v) => v.kernel === 'sgmat').length, 0);
  assert.equal(matmulCandidates({ ...gpuLike, subgroupMinSize: 16 }).filter((v) => v.kernel === 'sgmat').length, 0);
});

test('the search refuses a variant that computes wrong results, and says where it went wrong', async () => {
  // v2 made to skip its last step of k: faster, and wrong whenever K is past one step.
  const wrong = { name: 'skips-last-k-step', rewrite: (wgsl: string) => wgsl.replace('k0 < p.K; k0 += BK', 'k0 + BK < p.K; k0 += BK') };
  const restore = quickTiming();
  const report = await checkMatmulCandidates([{ variant: { kernel: 'v1' } }, { variant: { kernel: 'v2', tile: 32 }, rewrite: wrong }]).finally(restore);
  const bad = report.candidates[1]!;
  assert.equal(bad.name, 'v2(tile=32)#skips-last-k-step');
  assert.equal(bad.status, 'wrong', JSON.stringify(bad));
  assert.match(bad.reason!, /element \d+ is .*the CPU reference/);
  assert.equal(bad.ms, undefined, 'a refused variant is not timed');
  assert.equal(report.candidates[0]!.status, 'ok');
  assert.equal(variantName(report.choice.main), 'v1');
  assert.equal(variantName(report.choice.fallback), 'v1');
});

test('the search refuses a variant whose bias epilogue drops the bias or reads it from the start of its buffer', async () => {
  const epilogue = 'if (BIAS) { return v + f32(bias[p.bias_offset + n]); }';
  const rewrites = [
    { name: 'drops-bias', rewrite: (wgsl: string) => wgsl.replace(epilogue, 'if (BIAS) { return v; }') },
    { name: 'bias-at-0', rewrite: (wgsl: string) => wgsl.replace(epilogue, 'if (BIAS) { return v + f32(bias[n]); }') },
  ];
  assert.ok(rewrites.every((r) => r.rewrite(wgslSources['matmul.v2']) !== wgslSources['matmul.v2']), 'the rewrites find the epilogue');
  const restore = quickTiming();
  const report = await checkMatmulCandidates([{ variant: { kernel: 'v1' } }, ...rewrites.map((rewrite) => ({ variant: { kernel: 'v2' as const, tile: 32 as const }, rewrite }))]).finally(restore);
  assert.deepEqual(report.candidates.map((c) => c.status), ['ok', 'wrong', 'wrong']);
  for (const c of report.candidates.slice(1)) assert.match(c.reason!, /\+ bias\): element \d+ is .*the CPU reference/);
  assert.equal(variantName(report.choice.main), 'v1');
});

test('the search refuses a variant whose addend epilogue drops the addend, reads it from the start of its buffer or ignores alpha', async () => {
  const epilogue = 'if (ADD) { return f32(addend[p.addend_offset + i]) + p.alpha * s; }';
  const rewrites = [
    { name: 'drops-addend', rewrite: (wgsl: string) => wgsl.replace(epilogue, 'if (ADD) { return p.alpha * s; }') },
    { name: 'addend-at-0', rewrite: (wgsl: string) => wgsl.replace(epilogue, 'if (ADD) { return f32(addend[i]) + p.alpha * s; }') },
    { name: 'ignores-alpha', rewrite: (wgsl: string) => wgsl.replace(epilogue, 'if (ADD) { return f32(addend[p.addend_offset + i]) + s; }') },
  ];
  assert.ok(rewrites.every((r) => r.rewrite(wgslSources['matmul.v2']) !== wgslSources['matmul.v2']), 'the rewrites find the epilogue');
  const restore = quickTiming();
  const report = await checkMatmulCandidates([{ variant: { kernel: 'v1' } }, ...rewrites.map((rewrite) => ({ variant: { kernel: 'v2' as const, tile: 32 as const }, rewrite }))]).finally(restore);
  assert.deepEqual(report.candidates.map((c) => c.status), ['ok', 'wrong', 'wrong', 'wrong']);
  for (const c of report.candidates.slice(1)) assert.match(c.reason!, /into an addend times -?[\d.]+\): element \d+ is .*the CPU reference/);
  assert.equal(variantName(report.choice.main), 'v1');
});

test('single rows use the general kernels when the plain decode kernel is refused, whatever the other decode kernel did', async (t) => {
  const lanes = decodeCandidates(info).find((v) => v.sg !== undefined);
  if (!lanes) return t.skip('adapter has no fixed subgroup size for the lanes-along-k decode kernel');
  const doubled = { name: 'doubles-y', rewrite: (wgsl: string) => wgsl.replace('= vec4<T>(epilogue4(acc, n4 * 4u,', '= vec4<T>(epilogue4(acc * 2.0, n4 * 4u,') };
  const restore = quickTiming();
  const report = await checkMatmulCandidates([{ variant: { kernel: 'v1' } }, { variant: { kernel: 'matvec' }, rewrite: doubled }, { variant: lanes }]).finally(restore);
  assert.deepEqual(report.candidates.map((c) => c.status), ['ok', 'wrong', 'ok']);
  assert.equal(report.choice.decode, null);
});

test('the search skips a variant whose shader or pipeline cannot be created, with the compiler message', async () => {
  const broken = { name: 'does-not-compile', rewrite: (wgsl: string) => wgsl.replace('acc[0] = fma(', 'acc[0] = fma_undefined(') };
  const restore = quickTiming();
  const report = await checkMatmulCandidates([{ variant: { kernel: 'v2', tile: 32 }, rewrite: broken }, { variant: { kernel: 'v1' } }]).finally(restore);
  const bad = report.candidates[0]!;
  assert.equal(bad.status, 'failed', JSON.stringify(bad));
  assert.match(bad.reason!, /kernel \S*matmul\S*: shader module failed to compile/, bad.reason);
  assert.match(bad.reason!, /\n {2}line \d+:\d+ error: [^\n]*fma_undefined[^\n]*\n {4}\s*acc\[0\] = fma_undefined\(.*\n {4}\s*\^+/, bad.reason);
  assert.equal(variantName(report.choice.main), 'v1');
});

test('candidates are timed by their kernels\' timestamps, or by the wall clock while a Profiler records them', async (t) => {
  if (!info.features.has('timestamp-query')) return t.skip('adapter has no timestamp-query');
  const restore = quickTiming();
  try {
    const alone = await checkMatmulCandidates([{ variant: { kernel: 'v1' } }]);
    assert.equal(alone.timing, 'timestamp-query');
    assert.ok(Object.values(alone.candidates[0]!.ms!).every((ms) => ms > 0));
    const profiler = new Profiler();
    profiler.start();
    const recorded = await checkMatmulCandidates([{ variant: { kernel: 'v1' } }]);
    const kernels = (await profiler.stop()).kernels;
    assert.equal(recorded.timing, 'wall-clock');
    const tuning = kernels.find((k) => k.label === 'matmul tuning');
    assert.ok(tuning !== undefined && tuning.count > 0 && tuning.ms! > 0, JSON.stringify(kernels));
  } finally {
    restore();
  }
});

test('the search checks every candidate, times LLaMA-shaped products, and caches choice and report on disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-tune-'));
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = dir;
  try {
    const choice = await tuneMatmul();
    const cache = JSON.parse(readFileSync(join(dir, 'huatuo-webgpu', 'tiles.json'), 'utf8')) as Record<string, { choice: unknown; report: MatmulTuningReport }>;
    const entries = Object.values(cache);
    assert.equal(entries.length, 1);
    assert.deepEqual(entries[0]!.choice, choice);
    const report = entries[0]!.report;
    const names = [...matmulCandidates(info), ...decodeCandidates(info)].map(variantName);
    assert.deepEqual(report.candidates.map((c) => c.name), names);
    for (const c of report.candidates) {
      assert.equal(c.status, 'ok', `${c.name} was refused on this adapter: ${c.reason}`);
      assert.ok(Object.values(c.ms ?? {}).every((ms) => ms > 0), `${c.name} has no timings`);
    }
    assert.ok(report.shapes.some((s) => s.startsWith('gate/up')) && report.shapes.some((s) => s.startsWith('LoRA')) && report.shapes.some((s) => s.startsWith('decode')));
    // Decode reads a whole weight per row: it is timed at LLaMA-7B size, halved only until it fits a binding.
    const limit = info.maxStorageBufferBindingSize;
    const decodeDims = report.shapes.filter((s) => s.startsWith('decode')).map((s) => s.match(/\[1,(\d+)\]x\[\d+,(\d+)\]/)!.slice(1).map(Number) as [number, number]);
    assert.ok(decodeDims.every(([K, N]) => K * N * 4 <= limit), `decode shapes ${JSON.stringify(decodeDims)} fit one binding`);
    assert.ok(decodeDims.every(([K]) => K === 4096) || decodeDims.some(([K, N]) => 4 * K * N * 4 > limit), `decode shapes ${JSON.stringify(decodeDims)} are not scaled down further than the binding needs`);
    assert.equal(report.timing, info.features.has('timestamp-query') ? 'timestamp-query' : 'wall-clock');
    assert.deepEqual(matmulTuningReport(), report);
    const a = tensor(seededValues(64 * 64, 3), [64, 64]);
    assert.deepEqual(matmulPlan(a, a).kernel, choice.main);
    a.dispose();
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the subgroup-matrix kernel stages, tiles and stores every layout right (its builtins emulated per lane)', async () => {
  const { emulateSubgroupMatrices } = await import('./subgroup-matrix-emulation.js');
  {
    // 8 x 8 x 8 matrices and one small tile keep the emulation affordable on a CPU adapter (it holds whole
    // matrices in every lane); the staging and layout code is the same at every tile.
    const tiles = [[32, 32, 16, 16]] as const;
    // The direct kernel's emulation (every lane's matrices read from storage) can take many minutes on
    // lavapipe without a warm shader cache: it is checked when HUATUO_EMULATE_DIRECT=1 asks for it.
    const withDirect = process.env.HUATUO_EMULATE_DIRECT === '1';
    const candidates = tiles.flatMap(([tm, tn, wm, wn]) =>
      (withDirect ? [false, true] : [false]).map((direct) => ({
        variant: { kernel: 'sgmat' as const, m: 8, n: 8, k: 8, sg: 8, tm, tn, wm, wn, ...(direct ? { direct } : {}) },
        rewrite: { name: 'emulated', rewrite: emulateSubgroupMatrices },
      })),
    );
    const report = await checkMatmulCandidates(candidates, { time: false });
    assert.equal(report.candidates.length, candidates.length);
    for (const c of report.candidates) assert.equal(c.status, 'ok', `${c.name}: ${c.reason}`);
    if (withDirect) {
      // The direct kernel (matrices loaded from storage) is checked on its own: one reading a's second k
      // matrix of each step from the third is refused.
      const skipped = { name: 'emulated-direct-wrong-k', rewrite: (w: string) => emulateSubgroupMatrices(w).replaceAll('* p.a_sm + k0 + 8u', '* p.a_sm + k0 + 16u') };
      const wrongDirect = await checkMatmulCandidates([{ variant: candidates[1]!.variant, rewrite: skipped }], { time: false });
      assert.equal(wrongDirect.candidates[0]!.status, 'wrong', JSON.stringify(wrongDirect.candidates[0]));
    }
    // The emulation computes what the kernel asks of it: a kernel that loads the wrong k slice is refused.
    const shifted = { name: 'emulated-wrong-k', rewrite: (w: string) => emulateSubgroupMatrices(w).replace(/\(qm \+ 0u\) \* LDA \+ kk/g, '(qm + 0u) * LDA + (kk ^ 16u)') };
    const wrong = await checkMatmulCandidates([{ variant: candidates[0]!.variant, rewrite: shifted }], { time: false });
    assert.equal(wrong.candidates[0]!.status, 'wrong', JSON.stringify(wrong.candidates[0]));
  }
});
