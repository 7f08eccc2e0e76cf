// Dequantizing matmuls against the f16 product they replace: y = x W^T at 2048x4096x4096 (x f16 [M, K],
// W [N, K] read transposed as a linear layer stores it) with W in f16, int8 and NF4, and the input
// gradient dY W. All cases run in one benny suite, so the ratios compare one run on one loaded machine.
// `node --conditions=source --import tsx bench/quant.bench.ts` runs it alone.
import {
  QuantizedWeight,
  f32ToF16Bits,
  initWebGPU,
  matmul,
  quantizeHost,
  quantizedMatmul,
  tensor,
  transpose,
  tuneMatmul,
  type Tensor,
} from '@huatuo/tensor';
import type { BenchContext } from './kernels.bench.js';
import { readFew } from './matmul.bench.js';
import { benchSuite, type Case } from './timing.js';

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

if (import.meta.url === `file://${process.argv[1]}`) {
  await initWebGPU();
  await tuneMatmul();
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const lines = await benchQuant({ reps: 3, log, push: (r) => log(`${r.bench.padEnd(12)} ${r.impl.padEnd(12)} ${r.shape} ${r.ms.toFixed(1).padStart(8)} ms ${r.gflops!.toFixed(1)} GFLOP/s ${r.note ?? ''}`) });
  log(lines.join('\n'));
  process.exit(0);
}
