// `npm run bench [-- --quick | --gpu-only]`: the adapter's roofline, the project's matmul (tuned and naive), decode
// matrix-vector, softmax and a training step, beside tfjs-webgpu and jax-js on the same adapter; writes
// a table, bench/results/<adapter>-<date>.json and bench/RESULTS.md, and checks the targets. `--gpu-only`
// runs the roofline and the GPU rows alone (bench/gpu.bench.ts, PyTorch beside them) on a GPU adapter.
// `--acceptance [--budget S] [--out DIR] [--small] [--sections matmul,lora,...] [--tests DIR,...] [--no-torch]`:
// the GPU rows beside PyTorch, the test suite, the per-kernel report and decode variants in priority order
// within S seconds (default HUATUO_BENCH_BUDGET_S, else 450), every row written to DIR (default $OUT, else
// gpu-check-out) as it is measured (runAcceptance in bench/gpu.bench.ts); `--small` at toy sizes on any adapter.
import {
  destroyWebGPU,
  initWebGPU,
  matmul,
  randn,
  runtimeStats,
  softmax,
  tuneMatmul,
  variantName,
  type FloatDType,
} from '@huatuo/tensor';
import { benchDecode, benchMatmul, benchTrainStep, llamaDecode, llamaTrain, readFew, squares, type Shape } from './matmul.bench.js';
import { loadJax, loadTfjs, type Peer } from './peers.js';
import { idleKernelMs, measureRoofline } from './roofline.js';
import { getRuntime } from '@huatuo/tensor/internal';
import { timeMedian, type Row } from './timing.js';
import { table, writeResults } from './report.js';
import { benchKernels } from './kernels.bench.js';
import { benchQuant } from './quant.bench.js';
import { benchQuantHost } from './quant-host.bench.js';
import { benchTrain } from './train.bench.js';
import { benchHost } from './host.bench.js';
import { benchTorch } from './sft.bench.js';
import { benchGpu, runAcceptance, SECTIONS } from './gpu.bench.js';

const quick = process.argv.includes('--quick');
const log = (s: string) => process.stdout.write(`${s}\n`);

const info = await initWebGPU();
const adapter = info.adapterName;
const f16 = info.features.has('shader-f16');
log(`adapter: ${adapter}; features ${[...info.features].join(', ')}; subgroup ${info.subgroupMinSize}-${info.subgroupMaxSize}${quick ? '; quick subset' : ''}`);

if (process.argv.includes('--acceptance')) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const budgetS = Number(arg('--budget') ?? process.env.HUATUO_BENCH_BUDGET_S ?? 450);
  if (!(budgetS > 0)) {
    log(`--budget ${arg('--budget') ?? process.env.HUATUO_BENCH_BUDGET_S}: give the seconds the run may take (flag --budget or HUATUO_BENCH_BUDGET_S)`);
    process.exit(1);
  }
  const code = await runAcceptance({
    out: arg('--out') ?? process.env.OUT ?? 'gpu-check-out',
    budgetS,
    small: process.argv.includes('--small'),
    sections: arg('--sections')?.split(',') ?? SECTIONS,
    torch: !process.argv.includes('--no-torch'),
    tests: arg('--tests')?.split(',') ?? ['test'],
    log,
  });
  await destroyWebGPU();
  process.exit(code);
}
const choice = await tuneMatmul();
log(`matmul choice: main ${variantName(choice.main)}, fallback ${variantName(choice.fallback)}, decode ${choice.decode ? variantName(choice.decode) : 'general kernels'}${choice.f16 ? `, f16 ${variantName(choice.f16)}` : ''}`);

const roof = await measureRoofline(quick);
log(`roofline: FMA ${roof.gflops.toFixed(1)} GFLOP/s; copy kernel ${roof.copyGbps.toFixed(2)} GB/s read+write (${roof.readGbps.toFixed(2)} GB/s read); copyBufferToBuffer ${roof.copyToCopyGbps.toFixed(2)} GB/s`);

const rows: Row[] = [
  { bench: 'roofline fma', impl: 'huatuo', dtype: 'f32', shape: '-', ms: NaN, gflops: roof.gflops, gbps: null, adapter },
  { bench: 'roofline copy', impl: 'huatuo', dtype: 'f32', shape: '-', ms: NaN, gflops: null, gbps: roof.copyGbps, adapter, note: `read ${roof.readGbps.toFixed(2)} GB/s` },
  { bench: 'roofline copyBufferToBuffer', impl: 'webgpu', dtype: 'f32', shape: '-', ms: NaN, gflops: null, gbps: roof.copyToCopyGbps, adapter },
];
const push = (r: Omit<Row, 'adapter'>) => {
  const row = { ...r, adapter };
  rows.push(row);
  log(`${r.bench.padEnd(16)} ${r.impl.padEnd(12)} ${r.dtype} ${r.shape.padEnd(16)} ${r.ms.toFixed(2).padStart(9)} ms ${r.gflops !== null ? `${r.gflops.toFixed(1)} GFLOP/s` : ''} ${r.gbps !== null ? `${r.gbps.toFixed(2)} GB/s` : ''} ${r.note ?? ''}`);
};
const flops = (s: Shape) => 2 * s.M * s.N * s.K;
const dtypes: FloatDType[] = f16 ? ['f32', 'f16'] : ['f32'];

if (process.argv.includes('--gpu-only')) {
  if (quick || info.maxStorageBufferBindingSize < 1 << 30) {
    log('--gpu-only needs a GPU-sized adapter (1 GiB bindings) and no --quick; nothing measured or written');
    process.exit(1);
  }
  const lines = await benchGpu({ quick, reps: 3, roof, push, log });
  const summary = `Roofline: FMA ${roof.gflops.toFixed(1)} GFLOP/s; copy kernel ${roof.readGbps.toFixed(2)} GB/s read (${roof.copyGbps.toFixed(2)} read+write). Matmul choice: ${variantName(choice.main)}${choice.f16 ? `, f16 ${variantName(choice.f16)}` : ''} (fallback ${variantName(choice.fallback)}).\n\nGPU rows only (\`--gpu-only\`):\n${lines.join('\n')}`;
  log(table(rows));
  log(summary);
  const written = writeResults(adapter, rows, summary, quick);
  log(`\nwrote ${written.json}${written.markdown ? ' and bench/RESULTS.md' : ''}`);
  await destroyWebGPU();
  process.exit(0);
}
const reps = quick ? 3 : 5;

// Matmul: the project's kernels.
const mmShapes = quick ? [...squares([256, 512, 1024]), llamaTrain[0]!] : [...squares([256, 512, 1024, 2048]), ...llamaTrain];
for (const dtype of dtypes) {
  for (const s of mmShapes) {
    const m = await benchMatmul(s, dtype, s.M * s.N * s.K > 4e9 ? 3 : reps);
    if (!m) continue;
    const gflops = flops(s) / m.ms / 1e6;
    push({ bench: 'matmul', impl: 'huatuo', dtype, shape: s.name, ms: m.ms, gflops, gbps: null, roofline: gflops / roof.gflops, ...(m.note ? { note: m.note } : {}) });
  }
  // Decode: memory bound, so timed by timestamp queries like the copy roofline it is compared with;
  // benny's wall clock (readback included) goes in the note.
  for (const s of llamaDecode) {
    const m = await benchDecode(s, dtype, reps);
    const bytes = s.K * s.N * (dtype === 'f16' ? 2 : 4);
    const gbps = bytes / m.kernelMs / 1e6;
    const note = `W [N, K] read transposed; benny wall ${m.wallMs.toFixed(1)} ms${m.note ? `; ${m.note}` : ''}`;
    push({ bench: 'decode matvec', impl: 'huatuo', dtype, shape: s.name, ms: m.kernelMs, gflops: flops(s) / m.kernelMs / 1e6, gbps, roofline: gbps / roof.readGbps, note });
  }
}
// The naive baseline (v1).
for (const s of squares(quick ? [256, 512] : [256, 512, 1024])) {
  const m = (await benchMatmul(s, 'f32', 3, true))!;
  const gflops = flops(s) / m.ms / 1e6;
  push({ bench: 'matmul', impl: 'naive', dtype: 'f32', shape: s.name, ms: m.ms, gflops, gbps: null, roofline: gflops / roof.gflops });
}

// Softmax and a training step of the project.
const smShapes: [number, number][] = quick ? [[2048, 1024]] : [[2048, 1024], [256, 32000]];
for (const [R, C] of smShapes) {
  const x = randn([R, C], { seed: 3 });
  const ms = await timeMedian(async () => {
    const y = softmax(x);
    await readFew(y);
    y.dispose();
  }, reps, 1, `softmax ${R}x${C}`);
  x.dispose();
  push({ bench: 'softmax', impl: 'huatuo', dtype: 'f32', shape: `${R}x${C}`, ms, gflops: null, gbps: (2 * R * C * 4) / ms / 1e6 });
}
const train: [number, number, number] = quick ? [256, 512, 512] : [256, 1024, 1024];
const trainName = `${train[0]}x${train[1]}x${train[2]}`;
{
  const ms = await benchTrainStep(...train, reps);
  push({ bench: 'train step xW,dW', impl: 'huatuo', dtype: 'f32', shape: trainName, ms, gflops: (4 * train[0] * train[1] * train[2]) / ms / 1e6, gbps: null });
}

// Waiting: the same 1024^3 kernel through the public readback vs timed with idle waiting.
const s1024 = squares([1024])[0]!;
const viaReadback = rows.find((r) => r.bench === 'matmul' && r.impl === 'huatuo' && r.dtype === 'f32' && r.shape === s1024.name)!;
let idleMs: number;
{
  const a = randn([1024, 1024], { seed: 1 });
  const b = randn([1024, 1024], { seed: 2 });
  const rt = getRuntime();
  idleMs = await idleKernelMs(() => matmul(a, b).dispose(), reps);
  await rt.sync();
  a.dispose();
  b.dispose();
}
push({ bench: 'matmul idle wait', impl: 'huatuo', dtype: 'f32', shape: s1024.name, ms: idleMs, gflops: flops(s1024) / idleMs / 1e6, gbps: null, roofline: flops(s1024) / idleMs / 1e6 / roof.gflops, note: 'kernel time by timestamp queries while the host sleeps' });

// First-use compile: pipelines after the first training step stay constant over the next steps.
const pipelines0 = runtimeStats().pipelines;
await benchTrainStep(...train, 2);
const pipelines1 = runtimeStats().pipelines;

// Peers.
const peerShapes = quick ? squares([512, 1024]) : [...squares([256, 512, 1024, 2048]), llamaTrain[0]!];
const peers: Peer[] = [];
for (const load of [loadTfjs, loadJax]) {
  try {
    const p = await load();
    if (p) peers.push(p);
  } catch (e) {
    log(`peer failed to load: ${(e as Error).message}`);
  }
}
for (const p of peers) {
  for (const s of peerShapes) {
    try {
      const ms = await p.matmul(s.M, s.K, s.N, s.M * s.K * s.N > 4e9 ? 2 : 3);
      const gflops = flops(s) / ms / 1e6;
      push({ bench: 'matmul', impl: p.name, dtype: 'f32', shape: s.name, ms, gflops, gbps: null, roofline: gflops / roof.gflops });
    } catch (e) {
      log(`${p.name} matmul ${s.name} failed: ${(e as Error).message}`);
    }
  }
  for (const [R, C] of smShapes) {
    try {
      const ms = await p.softmax(R, C, reps);
      push({ bench: 'softmax', impl: p.name, dtype: 'f32', shape: `${R}x${C}`, ms, gflops: null, gbps: (2 * R * C * 4) / ms / 1e6 });
    } catch (e) {
      log(`${p.name} softmax failed: ${(e as Error).message}`);
    }
  }
  try {
    const ms = await p.trainStep(...train, reps);
    if (ms !== null) push({ bench: 'train step xW,dW', impl: p.name, dtype: 'f32', shape: trainName, ms, gflops: (2 * train[0] * train[1] * train[2]) / ms / 1e6, gbps: null, note: 'dW only (the peer computes the needed gradient)' });
  } catch (e) {
    log(`${p.name} train step failed: ${(e as Error).message}`);
  }
}

// Targets.
const get = (impl: string, dtype: string, shape: string, bench = 'matmul') => rows.find((r) => r.bench === bench && r.impl === impl && r.dtype === dtype && r.shape === shape);
const lines: string[] = [];
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
const h32 = get('huatuo', 'f32', s1024.name);
const peerBest = Math.max(...peers.map((p) => get(p.name, 'f32', s1024.name)?.gflops ?? 0));
if (h32) {
  const x = peerBest > 0 ? h32.gflops! / peerBest : NaN;
  lines.push(`- f32 1024^3: ${h32.gflops!.toFixed(1)} GFLOP/s, ${x.toFixed(1)}x the faster peer (${peerBest.toFixed(1)}; target 8x): ${verdict(x >= 8)}; ${(h32.roofline! * 100).toFixed(0)} % of the FMA roofline (target 35 %): ${verdict(h32.roofline! >= 0.35)}.`);
  for (const r of rows.filter((r) => r.impl === 'huatuo' && r.bench === 'matmul' && r.dtype === 'f32' && r.shape !== s1024.name && (r.shape.startsWith('2048') || r.shape.startsWith('256x')) && r.shape !== '256x256x256')) {
    lines.push(`- f32 ${r.shape}: ${r.gflops!.toFixed(1)} GFLOP/s = ${((r.gflops! / h32.gflops!) * 100).toFixed(0)} % of the 1024^3 figure (target >= 80 %): ${verdict(r.gflops! >= 0.8 * h32.gflops!)}.`);
  }
}
const h16 = get('huatuo', 'f16', s1024.name);
if (h16) lines.push(`- f16 1024^3: ${h16.gflops!.toFixed(1)} GFLOP/s, ${(h16.roofline! * 100).toFixed(0)} % of the FMA roofline (target 45 %): ${verdict(h16.roofline! >= 0.45)}.`);
if (h32) lines.push(`- Waiting: 1024^3 through the public readback ${h32.ms.toFixed(1)} ms vs ${idleMs.toFixed(1)} ms with idle waiting = ${((idleMs / h32.ms) * 100).toFixed(0)} % (target >= 90 %): ${verdict(idleMs / h32.ms >= 0.9)}.`);
for (const dtype of dtypes) {
  const d = get('huatuo', dtype, '1x4096x11008', 'decode matvec');
  if (d) lines.push(`- Decode ${dtype} 1x4096x11008: ${d.gbps!.toFixed(2)} GB/s = ${(d.roofline! * 100).toFixed(0)} % of the copy kernel's read bandwidth (target >= 60 %): ${verdict(d.roofline! >= 0.6)}.`);
}
lines.push(`- First-use compile: ${pipelines0} pipelines after the first training steps, ${pipelines1} after two more: ${verdict(pipelines0 === pipelines1)}.`);
// Fused kernels, LLaMA training steps and the PyTorch CPU step (--no-torch skips it).
{
  const ctx = { quick, reps, roof, push, log };
  lines.push(...(await benchKernels(ctx)));
  lines.push(...(await benchQuant(ctx, quick ? 256 : 2048)));
  await benchQuantHost(ctx, quick ? [[1024, 1024]] : undefined);
  const train = await benchTrain(ctx);
  lines.push(...train.lines);
  lines.push(...(await benchHost(ctx)));
  if (!process.argv.includes('--no-torch')) lines.push(...(await benchTorch(ctx, train.results)));
  lines.push(...(await benchGpu(ctx)));
}
const summary = `Roofline: FMA ${roof.gflops.toFixed(1)} GFLOP/s; copy kernel ${roof.readGbps.toFixed(2)} GB/s read (${roof.copyGbps.toFixed(2)} read+write). Matmul choice: ${variantName(choice.main)} (fallback ${variantName(choice.fallback)}).\n\nTargets:\n${lines.join('\n')}`;
log('');
log(table(rows));
log('');
log(summary);
const written = writeResults(adapter, rows, summary, quick);
log(`\nwrote ${written.json}${written.markdown ? ' and bench/RESULTS.md' : ' (bench/RESULTS.md keeps the full run of this adapter)'}`);
await destroyWebGPU();
process.exit(0);
