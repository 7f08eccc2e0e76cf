// `node --conditions=source --import tsx bench/gpu-report.ts [OUT_DIR]`: what an adapter offers and where
// a step's time goes. Prints the adapter (features, limits, subgroup-matrix configs), the matmul search's
// report (every candidate checked against the CPU reference, refused ones with the reason, times on the
// LLaMA-7B step's products), each correct variant's rate at 2048x4096x4096 (f16 and f32, b read as a
// transposed weight), and per-kernel timestamp profiles of a LoRA step and of greedy decoding at LLaMA-7B
// width; writes the same as JSON to OUT_DIR/gpu-report.json when given. `--smoke` runs it all at toy sizes.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkFusedLinear,
  deviceInfo,
  initWebGPU,
  matmul,
  matmulTuningReport,
  profile,
  randn,
  setMatmulVariant,
  startScope,
  transpose,
  tuneMatmul,
  variantName,
  type FloatDType,
  type MatmulVariant,
  type ProfileReport,
} from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate } from '@huatuo/llama';
import { loraStepRunner } from './gpu.bench.js';
import { readFew } from './matmul.bench.js';
import { timeMedian } from './timing.js';
import { tokenIds } from './train.bench.js';

const smoke = process.argv.includes('--smoke');
const outDir = process.argv.slice(2).find((a) => !a.startsWith('--'));
const log = (s: string) => process.stdout.write(`${s}\n`);
const json: Record<string, unknown> = {};

const info = await initWebGPU({ unsafeApis: true });
json.adapter = {
  name: info.adapterName,
  features: [...info.features],
  subgroups: [info.subgroupMinSize, info.subgroupMaxSize],
  maxStorageBufferBindingSize: info.maxStorageBufferBindingSize,
  maxComputeWorkgroupStorageSize: info.maxComputeWorkgroupStorageSize,
  maxComputeInvocationsPerWorkgroup: info.maxComputeInvocationsPerWorkgroup,
  subgroupMatrixConfigs: info.subgroupMatrixConfigs,
};
log(`adapter ${info.adapterName}; subgroups ${info.subgroupMinSize}-${info.subgroupMaxSize}; features ${[...info.features].join(', ')}`);
log(`workgroup storage ${info.maxComputeWorkgroupStorageSize} B, invocations ${info.maxComputeInvocationsPerWorkgroup}, binding ${info.maxStorageBufferBindingSize} B`);
log(`subgroup-matrix configs: ${info.subgroupMatrixConfigs.map((c) => `${c.M}x${c.N}x${c.K} ${c.componentType}->${c.resultComponentType}`).join('; ') || 'none'}`);

/** Runs one part of the report; a part that throws is logged and the next one runs. */
async function section(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    log(`${name} failed: ${(e as Error).stack ?? e}`);
    json[`${name} error`] = String((e as Error).message ?? e);
  }
}

let t0 = performance.now();
const choice = await tuneMatmul();
const report = matmulTuningReport()!;
json.tuning = report;
log(`\nmatmul search (${((performance.now() - t0) / 1000).toFixed(1)} s, scale 1/${report.scale}): main ${variantName(choice.main)}, f16 ${choice.f16 ? variantName(choice.f16) : '(main)'}, fallback ${variantName(choice.fallback)}, decode ${choice.decode ? variantName(choice.decode) : 'general'}`);
for (const c of report.candidates) {
  const ms = c.ms ? Object.entries(c.ms).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ') : '';
  log(`  ${c.name.padEnd(44)} ${c.status.padEnd(6)} ${ms}${c.reason ? ` ${c.reason.slice(0, 300)}` : ''}`);
}

// The fused decode products' check on this device (decoding uses them by default only where it passed).
const fusedCheck = await checkFusedLinear();
json.fusedLinearCheck = fusedCheck;
log(`fused decode products: ${fusedCheck.ok ? 'passed their check' : `refused: ${fusedCheck.reason}`}`);

// Each correct general variant, forced, on the q/k/v/o product of a 2048-token step: x [2048, 4096] times
// a weight [4096, 4096] read transposed, as the forward pass runs it; and the same with b row-major.
const rates: Record<string, Record<string, number>> = {};
const [M, K, N] = smoke ? [64, 128, 96] : [2048, 4096, 4096];
await section('rates', async () => {
for (const c of report.candidates.filter((c) => c.status === 'ok' && c.variant.kernel !== 'matvec')) {
  const dtypes: FloatDType[] = c.variant.kernel === 'sgmat' ? ['f16'] : ['f32', 'f16'];
  rates[c.name] = {};
  for (const dtype of dtypes) {
    for (const weightT of [true, false]) {
      const r = await rate(c.variant, dtype, weightT);
      rates[c.name]![`${dtype}${weightT ? ' x W^T' : ''}`] = r;
    }
  }
  log(`  ${c.name.padEnd(44)} ${Object.entries(rates[c.name]!).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')} TFLOP/s`);
}
});
json.rates = rates;

async function rate(v: MatmulVariant, dtype: FloatDType, weightT: boolean): Promise<number> {
  setMatmulVariant(v);
  const s = startScope();
  try {
    const a = randn([M, K], { dtype, seed: 1 });
    const w = randn(weightT ? [N, K] : [K, N], { dtype, seed: 2 });
    const b = weightT ? transpose(w) : w;
    const run = async () => {
      const c = matmul(a, b);
      await readFew(c);
      c.dispose();
    };
    const ms = await timeMedian(run, 5, 1, `${variantName(v)} ${dtype}`);
    return (2 * M * K * N) / ms / 1e9;
  } finally {
    s.end();
    setMatmulVariant(null);
  }
}

/** Top kernels of a profile as lines, and as JSON rows. */
function kernels(r: ProfileReport, top = 30): { lines: string[]; rows: unknown[] } {
  const rows = r.kernels.slice(0, top);
  const lines = rows.map((k) => `    ${(k.ms ?? 0).toFixed(2).padStart(9)} ms ${String(k.count).padStart(5)}x  ${k.label}`);
  return { lines: [`  ${r.source}: kernels ${r.gpuMs.toFixed(1)} ms of ${r.wallMs.toFixed(1)} ms wall`, ...lines], rows: r.kernels };
}

const [BATCH, SEQ] = smoke ? [2, 32] : [8, 256];
for (const layers of [2]) {
  const config = smoke ? configFromPreset('tiny', { numHiddenLayers: layers }) : configFromPreset('llama-7b', { numHiddenLayers: layers });
  await section(`LoRA step L${layers}`, async () => {
  t0 = performance.now();
  const { run: step, dispose } = loraStepRunner(config, BATCH, SEQ);
  const ms = await timeMedian(step, 3, 1, `LoRA step L${layers}`);
  const { report: prof } = await profile(step);
  const k = kernels(prof);
  json[`lora_step_L${layers}`] = { ms, profile: k.rows };
  log(`\nLoRA step, LLaMA-7B width, ${layers} layers, batch ${BATCH} x ${SEQ}, f16 base: ${ms.toFixed(1)} ms (setup and warm-up ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  for (const l of k.lines) log(l);
  dispose();
  });
  await section(`decode L${layers}`, async () => {

  const decodeModel = createRandomLlama(config, { seed: 1, dtype: 'f16' });
  const prompt = Array.from(tokenIds(16, config.vocabSize, 5));
  const gen = (n: number) => async () => generate(decodeModel, null, [prompt], { maxNewTokens: n, eosTokenIds: [] });
  const one = await timeMedian(gen(1), 3, 1, 'decode 1');
  const many = await timeMedian(gen(33), 3, 1, 'decode 33');
  const { report: dprof } = await profile(gen(9));
  const d = kernels(dprof, 20);
  json[`decode_L${layers}`] = { msPerToken: (many - one) / 32, profile: d.rows };
  log(`\ngreedy decode, ${layers} layers, f16: ${((many - one) / 32).toFixed(2)} ms a token (first token ${one.toFixed(1)} ms); profile of 9 tokens:`);
  for (const l of d.lines) log(l);
  decodeModel.dispose();
  });
}

if (outDir) writeFileSync(join(outDir, 'gpu-report.json'), JSON.stringify(json, null, 1));
log(`\ndevice: ${deviceInfo()?.adapterName}`);
process.exit(0);
