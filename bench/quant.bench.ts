// Dequantizing matmuls against the f16 product they replace: y = x W^T at 2048x4096x4096 (x f16 [M, K],
// W [N, K] read transposed as a linear layer stores it) with W in f16, int8 and NF4, and the input
// gradient dY W. All cases run in one benny suite, so the ratios compare one run on one loaded machine.
// Decode rows (M = 1, LLaMA-7B's projections): the tiled and the matrix-vector dequantizing kernels
// against the dense f16 matrix-vector product, as GB/s of weight bytes read.
// `node --conditions=source --import tsx bench/quant.bench.ts [--decode]` runs it alone (--decode: the decode rows only).
import {
  Profiler,
  QuantizedWeight,
  f32ToF16Bits,
  initWebGPU,
  matmul,
  noGrad,
  quantizeHost,
  quantizedMatmul,
  tensor,
  transpose,
  tuneMatmul,
  type Tensor,
} from '@huatuo/tensor';
import { setQuantizedDecode, type QuantizedDecodePath } from '@huatuo/tensor/internal';
import type { BenchContext } from './kernels.bench.js';
import { readFew } from './matmul.bench.js';
import { benchSuite, type Case, type Row } from './timing.js';

/** Seeded values in [-0.5, 0.5). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/** Times f16, int8 and NF4 products at [M, K] x [N, K]^T and their input gradients; returns target lines. */
export async function benchQuant(ctx: Pick<BenchContext, 'reps' | 'push' | 'log'>, M = 2048, K = 4096, N = 4096): Promise<string[]> {
  const shape = `${M}x${K}x${N}`;
  const w32 = values(N * K, 7);
  const x = tensor(f32ToF16Bits(values(M * K, 1)), [M, K]);
  const dy = tensor(f32ToF16Bits(values(M * N, 2)), [M, N]);
  const w16 = tensor(f32ToF16Bits(w32), [N, K]);
  const quant = { int8: QuantizedWeight.upload(quantizeHost(w32, N, K, 'int8')), nf4: QuantizedWeight.upload(quantizeHost(w32, N, K, 'nf4')) };
  const run = (f: () => Tensor) => async () => {
    const y = f();
    await readFew(y);
    y.dispose();
  };
  const cases: Case[] = [
    ['f16 x W^T', run(() => matmul(x, transpose(w16)))],
    ['int8 x W^T', run(() => quantizedMatmul(x, quant.int8))],
    ['nf4 x W^T', run(() => quantizedMatmul(x, quant.nf4))],
    ['f16 dY W', run(() => matmul(dy, w16))],
    ['int8 dY W', run(() => quantizedMatmul.def.backward({ inputs: [x], saved: [], data: { w: quant.int8 }, needsGrad: () => true }, dy)[0]!)],
    ['nf4 dY W', run(() => quantizedMatmul.def.backward({ inputs: [x], saved: [], data: { w: quant.nf4 }, needsGrad: () => true }, dy)[0]!)],
  ];
  const t = await benchSuite(`quantized matmul ${shape}`, cases, ctx.reps);
  const lines: string[] = [];
  const gflops = (ms: number) => (2 * M * N * K) / ms / 1e6;
  for (const dir of ['x W^T', 'dY W']) {
    const base = t.get(`f16 ${dir}`)!.ms;
    for (const fmt of ['f16', 'int8', 'nf4']) {
      const ms = t.get(`${fmt} ${dir}`)!.ms;
      ctx.push({ bench: `matmul ${dir}`, impl: fmt === 'f16' ? 'huatuo' : `huatuo ${fmt}`, dtype: 'f16', shape, ms, gflops: gflops(ms), gbps: null, note: fmt === 'f16' ? 'f16 weight' : `${(ms / base).toFixed(2)}x the f16 weight in the same run` });
      if (fmt !== 'f16') lines.push(`- ${fmt} ${dir} at ${shape}: ${(ms / base).toFixed(2)}x the f16 product in the same run (target <= 1.5x): ${ms / base <= 1.5 ? 'met' : '**missed**'}.`);
    }
  }
  for (const q of Object.values(quant)) q.dispose();
  for (const a of [x, dy, w16]) a.dispose();
  return lines;
}

/** Decode products timed: [N, K] weights of LLaMA-7B (q/k/v/o, gate/up, down). */
const DECODE_SHAPES: Array<[N: number, K: number]> = [
  [4096, 4096],
  [11008, 4096],
  [4096, 11008],
];
/** Products chained per timed run, so that a GPU's launch and readback do not swamp a few microseconds of kernel. */
const DECODE_CHAIN = 8;

/** Median ms of one product over `reps` runs of DECODE_CHAIN (kernel time by timestamp queries where the adapter has them), and its dispatches. */
async function timedDecode(reps: number, f: () => Tensor): Promise<{ ms: number; dispatches: number; clock: string }> {
  const run = async () => {
    const ys = noGrad(() => Array.from({ length: DECODE_CHAIN }, f));
    await readFew(ys[ys.length - 1]!);
    for (const y of ys) y.dispose();
  };
  await run();
  const samples: number[] = [];
  let dispatches = 0;
  let clock = '';
  for (let i = 0; i < Math.max(3, reps); i++) {
    const p = new Profiler();
    p.start();
    const done = run();
    const r = await p.stop();
    await done;
    samples.push((r.source === 'timestamp-query' ? r.gpuMs : r.wallMs) / DECODE_CHAIN);
    dispatches = r.kernels.reduce((s, k) => s + k.count, 0) / DECODE_CHAIN;
    clock = r.source === 'timestamp-query' ? 'kernel time' : 'wall time';
  }
  return { ms: samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!, dispatches, clock };
}

/**
 * Decode rows: y = x W^T for one f16 row of x at each of DECODE_SHAPES, with W in f16 (the matmul choice's
 * matrix-vector kernel), int8 and NF4 (the tiled kernels and the matrix-vector ones, each forced), as ms
 * and GB/s of the weight bytes read (codes and scales); returns summary lines.
 */
export async function benchQuantDecode(ctx: Pick<BenchContext, 'reps' | 'push' | 'log'>): Promise<string[]> {
  const lines: string[] = [];
  const pool = values(Math.max(...DECODE_SHAPES.map(([N, K]) => N * K)), 7);
  for (const [N, K] of DECODE_SHAPES) {
    const shape = `1x${K}x${N}`;
    const w32 = pool.subarray(0, N * K);
    const x = tensor(f32ToF16Bits(values(K, 1)), [1, K]);
    const w16 = tensor(f32ToF16Bits(w32), [N, K]);
    const quant = { int8: QuantizedWeight.upload(quantizeHost(w32, N, K, 'int8')), nf4: QuantizedWeight.upload(quantizeHost(w32, N, K, 'nf4')) };
    const row = async (impl: string, bytes: number, path: QuantizedDecodePath | null, f: () => Tensor) => {
      setQuantizedDecode(path);
      try {
        const { ms, dispatches, clock } = await timedDecode(ctx.reps, f);
        const gbps = bytes / ms / 1e6;
        ctx.push({ bench: 'decode x W^T', impl, dtype: 'f16', shape, ms, gflops: null, gbps, note: `${dispatches} dispatch${dispatches === 1 ? '' : 'es'}; ${clock}; GB/s of weight bytes read` });
        return ms;
      } finally {
        setQuantizedDecode(null);
      }
    };
    const dense = await row('huatuo f16 matvec', w16.size * 2, null, () => matmul(x, transpose(w16)));
    for (const fmt of ['int8', 'nf4'] as const) {
      const q = quant[fmt];
      const tiled = await row(`huatuo ${fmt} tiled`, q.bytes, 'tiled', () => quantizedMatmul(x, q));
      const matvec = await row(`huatuo ${fmt} matvec`, q.bytes, 'matvec', () => quantizedMatmul(x, q));
      lines.push(`- decode ${fmt} at ${shape}: matvec ${matvec.toFixed(3)} ms, tiled ${tiled.toFixed(3)} ms (${(tiled / matvec).toFixed(2)}x), dense f16 ${dense.toFixed(3)} ms (${(dense / matvec).toFixed(2)}x).`);
    }
    for (const q of Object.values(quant)) q.dispose();
    for (const a of [x, w16]) a.dispose();
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await initWebGPU();
  await tuneMatmul();
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const push = (r: Omit<Row, 'adapter'>) =>
    log(`${r.bench.padEnd(12)} ${r.impl.padEnd(20)} ${r.shape.padEnd(14)} ${r.ms.toFixed(3).padStart(10)} ms ${r.gflops !== null ? `${r.gflops.toFixed(1)} GFLOP/s` : `${r.gbps!.toFixed(1)} GB/s`} ${r.note ?? ''}`);
  const lines = process.argv.includes('--decode') ? [] : await benchQuant({ reps: 3, log, push });
  lines.push(...(await benchQuantDecode({ reps: 5, log, push })));
  log(lines.join('\n'));
  process.exit(0);
}
