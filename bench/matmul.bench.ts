// The project's matmul (tuned kernels) and its naive v1 baseline on the benchmark shapes, through the
// public API: compute, then read back a few values. f32 weights over the adapter's storage binding
// limit are run as two half products (noted in the row).
import {
  cat,
  deviceInfo,
  f32ToF16Bits,
  tensor,
  matmul,
  matmulPlan,
  randn,
  readyMatmul,
  setMatmulVariant,
  slice,
  sum,
  toArray,
  transpose,
  variantName,
  type FloatDType,
  type Tensor,
} from '@huatuo/tensor';
import { idleKernelMs } from './roofline.js';
import { timeMedian } from './timing.js';

/** Seeded values in [-0.5, 0.5) as a tensor; f16 data is made on the host (an f32 copy may not fit). */
function rnd(shape: number[], dtype: FloatDType, seed: number): Tensor {
  if (dtype === 'f32') return randn(shape, { seed });
  const n = shape.reduce((p, d) => p * d, 1);
  const bits = new Uint16Array(n);
  const chunk = new Float32Array(Math.min(n, 1 << 20));
  let s = seed >>> 0;
  for (let at = 0; at < n; at += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, n - at));
    for (let i = 0; i < part.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      part[i] = s / 4294967296 - 0.5;
    }
    bits.set(f32ToF16Bits(part), at);
  }
  return tensor(bits, shape);
}

export interface Shape {
  M: number;
  K: number;
  N: number;
  name: string;
}

export const squares = (sizes: number[]): Shape[] => sizes.map((n) => ({ M: n, K: n, N: n, name: `${n}x${n}x${n}` }));
export const llamaTrain: Shape[] = [
  { M: 256, K: 4096, N: 4096, name: '256x4096x4096' },
  { M: 256, K: 4096, N: 11008, name: '256x4096x11008' },
  { M: 256, K: 11008, N: 4096, name: '256x11008x4096' },
];
export const llamaDecode: Shape[] = [
  { M: 1, K: 4096, N: 4096, name: '1x4096x4096' },
  { M: 1, K: 4096, N: 11008, name: '1x4096x11008' },
];

/**
 * Reads 4 values of a result: the benchmark's completion point. Disposes both views it makes, so that
 * disposing `t` returns its buffer to the pool (a leaked view would make every run allocate afresh).
 */
export async function readFew(t: Tensor): Promise<number> {
  const flat = t.reshape([t.size]);
  const v = slice(flat, 0, 0, Math.min(4, t.size));
  flat.dispose();
  const out = await toArray(v);
  v.dispose();
  return out[0]!;
}

export interface Measured {
  ms: number;
  note?: string;
}

/** Times `matmul` on a shape; splits b in two when one operand would exceed the binding limit. */
export async function benchMatmul(s: Shape, dtype: FloatDType, reps: number, naive = false): Promise<Measured | null> {
  const limit = deviceInfo()!.maxStorageBufferBindingSize;
  const bytes = dtype === 'f16' ? 2 : 4;
  const split = s.K * s.N * bytes > limit;
  if (naive) setMatmulVariant({ kernel: 'v1' });
  try {
    const a = rnd([s.M, s.K], dtype, 1);
    let run: () => Promise<unknown>;
    let note: string | undefined;
    const keep: Tensor[] = [a];
    if (!split) {
      const b = rnd([s.K, s.N], dtype, 2);
      keep.push(b);
      run = async () => {
        const c = matmul(a, b);
        await readFew(c);
        c.dispose();
      };
    } else if (s.N >= s.K) {
      // Column halves: c = [a b1, a b2].
      const b1 = rnd([s.K, s.N / 2], dtype, 2);
      const b2 = rnd([s.K, s.N / 2], dtype, 3);
      keep.push(b1, b2);
      note = `b (${s.K}x${s.N} ${dtype}) exceeds the ${limit >> 20} MiB binding limit: two products of N/2`;
      run = async () => {
        const c1 = matmul(a, b1);
        const c2 = matmul(a, b2);
        await readFew(c1);
        await readFew(c2);
        c1.dispose();
        c2.dispose();
      };
    } else {
      // Row halves of b (K split): c = a1 b1 + a2 b2.
      const a1 = rnd([s.M, s.K / 2], dtype, 4);
      const a2 = rnd([s.M, s.K / 2], dtype, 5);
      const b1 = rnd([s.K / 2, s.N], dtype, 2);
      const b2 = rnd([s.K / 2, s.N], dtype, 3);
      keep.push(a1, a2, b1, b2);
      note = `b (${s.K}x${s.N} ${dtype}) exceeds the ${limit >> 20} MiB binding limit: two products of K/2, summed`;
      run = async () => {
        const c1 = matmul(a1, b1);
        const c2 = matmul(a2, b2);
        const c = c1.add(c2);
        await readFew(c);
        for (const t of [c1, c2, c]) t.dispose();
      };
    }
    const ms = await timeMedian(run, reps, 1, `matmul ${naive ? 'v1 ' : ''}${dtype} ${s.name}`);
    for (const t of keep) t.dispose();
    return note ? { ms, note } : { ms };
  } finally {
    if (naive) setMatmulVariant(null);
  }
}

/** A decode row: kernel time by timestamp queries (as the copy roofline) and benny's wall clock. */
export interface DecodeMeasured {
  kernelMs: number;
  wallMs: number;
  note?: string;
}

/**
 * Times y = x W^T for one row x [1, K] with W [N, K] stored as a linear layer's weight (Hugging Face
 * [out, in], read transposed in place), split into row parts under the binding limit as @huatuo/llama's
 * Linear loads it (parts' outputs concatenated).
 */
export async function benchDecode(s: Shape, dtype: FloatDType, reps: number): Promise<DecodeMeasured> {
  const limit = deviceInfo()!.maxStorageBufferBindingSize;
  const bytes = dtype === 'f16' ? 2 : 4;
  const nParts = Math.ceil((s.K * s.N * bytes) / limit);
  const rows = Math.ceil(s.N / nParts / 4) * 4;
  const x = rnd([1, s.K], dtype, 1);
  const parts: Tensor[] = [];
  for (let r = 0; r < s.N; r += rows) parts.push(rnd([Math.min(rows, s.N - r), s.K], dtype, 2 + r));
  const forward = () => {
    const outs = parts.map((w) => matmul(x, transpose(w)));
    if (outs.length === 1) return outs[0]!;
    const y = cat(outs, -1);
    for (const o of outs) o.dispose();
    return y;
  };
  const kernelMs = await idleKernelMs(() => forward().dispose(), reps);
  const wallMs = await timeMedian(
    async () => {
      const y = forward();
      await readFew(y);
      y.dispose();
    },
    reps,
    1,
    `decode ${dtype} ${s.name}`,
  );
  for (const t of [x, ...parts]) t.dispose();
  const note = nParts > 1 ? `W (${s.N}x${s.K} ${dtype}) over the ${limit >> 20} MiB binding limit: ${nParts} row parts, as Linear loads it` : undefined;
  return note ? { kernelMs, wallMs, note } : { kernelMs, wallMs };
}

/** One training step of y = x W: forward, loss = sum(y), dW by backward; reads a few values of dW. */
export async function benchTrainStep(M: number, K: number, N: number, reps: number): Promise<number> {
  const x = randn([M, K], { seed: 1 });
  const w = randn([K, N], { seed: 2, requiresGrad: true });
  const ms = await timeMedian(async () => {
    const y = matmul(x, w);
    const loss = sum(y);
    loss.backward();
    await readFew(w.grad!);
    w.grad!.dispose();
    w.grad = null;
    y.dispose();
    loss.dispose();
  }, reps, 1, `train step ${M}x${K}x${N}`);
  x.dispose();
  w.dispose();
  return ms;
}

/** The products of a LoRA adapter of rank 8 on a 4096-wide projection over 2048 tokens: x A^T, dy B and dh^T x. */
export const loraProducts = { tokens: 2048, width: 4096, rank: 8 };

/**
 * Milliseconds of the three LoRA products (one each, then a read of a few values): with the kernels the
 * search chose for `dtype`, then with a tiling kernel (the chosen one, or the choice's fallback where the
 * chosen one does not tile c) forced unsplit and forced split along k to fill `splitK` workgroups.
 * `kernel` names that tiling kernel and `slices` the slices of k each product ran in when split.
 */
export async function benchLoraProducts(dtype: FloatDType, reps: number, splitK: number): Promise<{ tuned: number; unsplit: number; split: number; kernel: string; slices: number[] }> {
  const { tokens, width, rank } = loraProducts;
  const choice = await readyMatmul();
  const chosen = dtype === 'f16' && choice.f16 ? choice.f16 : choice.main;
  const tiling = chosen.kernel === 'v3' || chosen.kernel === 'matvec' ? choice.fallback : chosen;
  const x = rnd([tokens, width], dtype, 1);
  const A = rnd([rank, width], dtype, 2);
  const dy = rnd([tokens, width], dtype, 3);
  const B = rnd([width, rank], dtype, 4);
  const dh = rnd([tokens, rank], dtype, 5);
  const [At, dht] = [transpose(A), transpose(dh)];
  const products: Array<[Tensor, Tensor]> = [
    [x, At],
    [dy, B],
    [dht, x],
  ];
  const run = async () => {
    const outs = products.map(([a, b]) => matmul(a, b));
    for (const o of outs) await readFew(o);
    for (const o of outs) o.dispose();
  };
  const time = (what: string) => timeMedian(run, reps, 1, `LoRA products ${dtype} ${what}`);
  try {
    const tuned = await time('as tuned');
    setMatmulVariant(tiling);
    const unsplit = await time('unsplit');
    setMatmulVariant(tiling, { splitK });
    const slices = products.map(([a, b]) => matmulPlan(a, b).splitK);
    const split = await time('split');
    return { tuned, unsplit, split, kernel: variantName(tiling), slices };
  } finally {
    setMatmulVariant(null);
    for (const t of [At, dht, x, A, dy, B, dh]) t.dispose();
  }
}
