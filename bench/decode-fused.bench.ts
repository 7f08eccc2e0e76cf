// The fused decode kernels against the separate ops they replace, one new token (M = 1) at LLaMA-7B width:
// RMSNorm and q/k/v in one product (fusedLinear; again with Qwen2's q/k/v biases), o_proj and down_proj
// with the residual add (fusedLinearAdd), RMSNorm, gate and up with SwiGLU (fusedLinearSwiglu), RoPE with the KV-cache writes
// (ropeCache). GB/s over the
// weights read (the products' minimal traffic), kernel time by timestamp queries where the adapter has
// them (else wall time), and the dispatches of each side. Run alone:
// `node --conditions=source --import tsx bench/decode-fused.bench.ts [--quick]`
import {
  deviceInfo, add, copyInto, destroyWebGPU, fusedLinear, fusedLinearAdd, fusedLinearFits, fusedLinearSwiglu, hasF16, initWebGPU, matmul, noGrad, Profiler,
  randn, reshape, rmsNorm, rope, ropeCache, slice, swiglu, tensor, transpose, type FloatDType, type Tensor,
} from '@huatuo/tensor';
import type { BenchContext } from './kernels.bench.js';
import { readFew } from './matmul.bench.js';
import { measureRoofline } from './roofline.js';

const [C, I, H, D, L] = [4096, 11008, 32, 128, 2048];

/** Median ms of `fn` over `reps` runs after one untimed run, and its dispatches per run. */
async function timed(reps: number, fn: () => Promise<void>): Promise<{ ms: number; dispatches: number }> {
  await fn();
  const samples: number[] = [];
  let dispatches = 0;
  for (let i = 0; i < reps; i++) {
    const p = new Profiler();
    p.start();
    const run = fn();
    const r = await p.stop();
    await run;
    samples.push(r.source === 'timestamp-query' ? r.gpuMs : r.wallMs);
    dispatches = r.kernels.reduce((s, k) => s + k.count, 0);
  }
  return { ms: samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!, dispatches };
}

/** One row per side (fused, separate ops) of a product over `weightBytes` of weights. */
async function pair(ctx: BenchContext, bench: string, dtype: FloatDType, shape: string, bytes: number, fused: () => Tensor, separate: () => Tensor): Promise<void> {
  for (const [impl, f] of [['huatuo fused', fused], ['separate ops', separate]] as const) {
    const { ms, dispatches } = await timed(ctx.reps, async () => {
      const y = noGrad(f);
      await readFew(y);
      y.dispose();
    });
    const gbps = bytes / ms / 1e6;
    ctx.push({ bench, impl, dtype, shape, ms, gflops: null, gbps, roofline: gbps / ctx.roof.readGbps, note: `${dispatches} dispatches; traffic: the weights read (rope: q, k, v read and written)` });
  }
}

/** The fused decode rows (f16, and f32 unless quick); returns a summary line. */
export async function benchDecodeFused(ctx: BenchContext): Promise<string[]> {
  const rows: string[] = [];
  const start = ctx.push;
  ctx = { ...ctx, push: (r) => (rows.push(`${r.bench} ${r.impl} ${r.dtype} ${r.ms.toFixed(3)} ms`), start(r)) };
  const dtypes: FloatDType[] = [...(hasF16() ? (['f16'] as const) : []), ...(ctx.quick ? [] : (['f32'] as const))];
  for (const dtype of dtypes) {
    const size = dtype === 'f16' ? 2 : 4;
    const w = (n: number, k: number, seed: number) => randn([n, k], { seed, dtype });
    const x = randn([1, 1, C], { seed: 1, dtype });
    const xi = randn([1, 1, I], { seed: 2, dtype });
    const [wq, wk, wv, wo] = [w(C, C, 3), w(C, C, 4), w(C, C, 5), w(C, C, 6)];
    // A weight past the binding limit (f32 [11008, 4096] on lavapipe) is split by Linear, which the fused products do not take.
    const mlpFits = I * C * size <= deviceInfo()!.maxStorageBufferBindingSize;
    const [wg, wu, wd] = mlpFits ? [w(I, C, 7), w(I, C, 8), w(C, I, 9)] : [w(1, C, 7), w(1, C, 8), w(C, 8, 9)];
    const norm = { weight: randn([C], { seed: 13, dtype }), eps: 1e-6 };
    if (!fusedLinearFits(x, [wq, wk, wv], norm)) {
      ctx.log('decode fused: the adapter has no fixed subgroup size; the fused products do not run here');
      for (const t of [x, xi, wq, wk, wv, wo, wg, wu, wd, norm.weight]) t.dispose();
      continue;
    }
    const lin = (a: Tensor, b: Tensor) => matmul(a, transpose(b));
    await pair(ctx, 'decode norm + q/k/v', dtype, `${C}->3x${C}`, 3 * C * C * size, () => fusedLinear(x, [wq, wk, wv], norm), () => {
      const h = rmsNorm(x, norm.weight, norm.eps);
      const [q, k, v] = [lin(h, wq), lin(h, wk), lin(h, wv)];
      h.dispose();
      k.dispose();
      v.dispose();
      return q;
    });
    // Qwen2's q/k/v biases: added in the product's epilogue, or one add a projection after its matmul.
    const bias = randn([3 * C], { seed: 14, dtype });
    await pair(ctx, 'decode norm + q/k/v + bias', dtype, `${C}->3x${C}`, 3 * C * C * size, () => fusedLinear(x, [wq, wk, wv], norm, undefined, bias), () => {
      const h = rmsNorm(x, norm.weight, norm.eps);
      const [q, k, v] = [wq, wk, wv].map((w, i) => add(lin(h, w), slice(bias, 0, i * C, (i + 1) * C)));
      h.dispose();
      k!.dispose();
      v!.dispose();
      return q!;
    });
    bias.dispose();
    await pair(ctx, 'decode o_proj + residual', dtype, `${C}->${C}`, C * C * size, () => fusedLinearAdd(x, x, wo), () => add(x, lin(x, wo)));
    if (!mlpFits) ctx.log(`decode fused ${dtype}: the MLP weights [${I}, ${C}] exceed one binding here; their rows are skipped`);
    if (mlpFits) await pair(ctx, 'decode norm + gate/up + swiglu', dtype, `${C}->2x${I}`, 2 * I * C * size, () => fusedLinearSwiglu(x, wg, wu, norm), () => {
      const h = rmsNorm(x, norm.weight, norm.eps);
      const y = swiglu(lin(h, wg), lin(h, wu));
      h.dispose();
      return y;
    });
    if (mlpFits) await pair(ctx, 'decode down_proj + residual', dtype, `${I}->${C}`, I * C * size, () => fusedLinearAdd(x, xi, wd), () => add(x, lin(xi, wd)));
    // RoPE and the cache writes at position L / 2 of a [1, H, L, D] cache.
    const qkv = randn([1, 1, 3 * H * D], { seed: 10, dtype });
    const [keys, values] = [randn([1, H, L, D], { seed: 11, dtype }), randn([1, H, L, D], { seed: 12, dtype })];
    const pos = tensor(new Int32Array([L / 2]));
    const [q, k, v] = [slice(qkv, 2, 0, H * D), slice(qkv, 2, H * D, 2 * H * D), slice(qkv, 2, 2 * H * D, 3 * H * D)];
    const heads = (t: Tensor) => transpose(reshape(t.contiguous(), [1, 1, H, D]), 1, 2);
    await pair(ctx, 'decode rope + KV-cache write', dtype, `H${H} D${D} L${L}`, 5 * H * D * size, () => ropeCache(q, k, v, pos, 10000, keys, values, L / 2), () => {
      copyInto(slice(keys, 2, L / 2, L / 2 + 1), rope(heads(k), pos, 10000));
      copyInto(slice(values, 2, L / 2, L / 2 + 1), heads(v));
      return rope(heads(q), pos, 10000);
    });
    for (const t of [x, xi, wq, wk, wv, wo, wg, wu, wd, norm.weight, qkv, keys, values, pos]) t.dispose();
  }
  return rows.length === 0 ? [] : [`- Fused decode kernels (M = 1, LLaMA-7B width): ${rows.join('; ')}.`];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.env.HUATUO_MATMUL_TUNE ??= '0';
  await initWebGPU();
  const quick = process.argv.includes('--quick');
  const roof = await measureRoofline(true);
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const push: BenchContext['push'] = (r) =>
    log(`${r.bench.padEnd(28)} ${r.impl.padEnd(13)} ${r.dtype} ${r.shape.padEnd(16)} ${r.ms.toFixed(3).padStart(8)} ms ${r.gbps?.toFixed(2) ?? '-'} GB/s  ${r.note ?? ''}`);
  await benchDecodeFused({ quick, reps: 5, roof, push, log });
  await destroyWebGPU();
  process.exit(0);
}
