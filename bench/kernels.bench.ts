// Fused kernels against their minimal traffic or FLOPs: attention (forward, forward+backward; and the
// unfused composition matmul, scale, mask, softmax, matmul), rmsNorm, crossEntropy, AdamW, swiglu, the
// sampling penalties, best_of's running sums and the log-probabilities a server returns (and a greedy pick's) over LLaMA's vocabulary, and the fused decode products (decode-fused.bench.ts).
// Attention FLOPs follow the FlashAttention papers: 4 T^2 D H for a full forward (q k^T and p v),
// halved under the causal mask; backward 2.5x the forward. Peak extra bytes: growth of the buffer
// pool (in use + pooled) over one run that starts from an empty pool, outputs and gradients included.
import {
  accumulateLogprobs,
  AdamW,
  add,
  attention,
  backward,
  cast,
  countTokens,
  crossEntropy,
  deviceInfo,
  frequencyPresencePenalty,
  hasF16,
  linear,
  logSoftmaxAtMax,
  logSoftmaxTopK,
  logitBias,
  logitBiasRow,
  markSeen,
  matmul,
  maskedFill,
  mul,
  QuantizedWeight,
  quantizedMatmul,
  quantizeHost,
  randn,
  readyAttention,
  repetitionPenalty,
  rmsNorm,
  seenMask,
  silu,
  softmax,
  swiglu,
  tensor,
  toArray,
  tokenCounts,
  transpose,
  type Tensor,
} from '@huatuo/tensor';
import { getRuntime } from '@huatuo/tensor/internal';
import { bandwidthRow, freeGrads } from './bandwidth.js';
import { benchDecodeFused } from './decode-fused.bench.js';
import { benchElementwise } from './elementwise.bench.js';
import { benchLayers } from './layers.bench.js';
import { readFew } from './matmul.bench.js';
import type { Roofline } from './roofline.js';
import { timeMedian, type Row } from './timing.js';

/** What a bench module gets from bench/run.ts. */
export interface BenchContext {
  quick: boolean;
  reps: number;
  roof: Roofline;
  push: (r: Omit<Row, 'adapter'>) => void;
  log: (s: string) => void;
}

const MiB = 1 << 20;

/** Bytes the pool grows by over one run of `fn` from an empty pool (its high-water mark), and the run's ms. */
async function peakBytes(fn: () => Promise<void>): Promise<{ bytes: number; ms: number }> {
  const rt = getRuntime();
  await rt.sync();
  rt.pool.trim(() => rt.flush());
  const s0 = rt.stats();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  await rt.sync();
  const s1 = rt.stats();
  return { bytes: s1.bytesInUse + s1.bytesPooled - (s0.bytesInUse + s0.bytesPooled), ms };
}

/** Causal attention the unfused way: scores, scale, mask, softmax, weighted values. q, k, v: [B, H, T, D]. */
function unfusedAttention(q: Tensor, k: Tensor, v: Tensor, future: Tensor): { o: Tensor; temps: Tensor[] } {
  const D = q.shape[3]!;
  const kt = transpose(k, 2, 3); // [B, H, D, T]
  const s = matmul(q, kt); // [B, H, T, T]
  const scaled = mul(s, 1 / Math.sqrt(D));
  const masked = maskedFill(scaled, future, -1e30);
  const p = softmax(masked);
  const o = matmul(p, v); // [B, H, T, D]
  return { o, temps: [kt, s, scaled, masked, p] };
}

/** Fused and unfused causal attention rows; returns the T = 1024 (quick: 512) target line. */
export async function benchAttention(ctx: BenchContext): Promise<string[]> {
  const H = 32;
  const D = 128;
  const limit = deviceInfo()!.maxStorageBufferBindingSize;
  const lines: string[] = [];
  const Ts = ctx.quick ? [128, 512] : [128, 512, 1024, 2048];
  const found = new Map<string, { ms: number; bytes: number }>();
  // The fused kernels timed are those every run uses (on GPUs v2 is otherwise created in the background).
  await readyAttention({ headDim: D, backward: true });
  for (const T of Ts) {
    const shape = [1, H, T, D];
    const fwdFlops = (2 * 2 * T * T * D * H) / 2;
    const name = `H${H} T${T} D${D} causal`;
    // Long sequences take seconds per run: one timed run at 1024, and at 2048 the memory run is the timed run.
    const reps = T >= 2048 ? 0 : T >= 1024 ? 1 : ctx.reps;
    const runs = reps === 0 ? 'one run (pipelines compiled at shorter T)' : reps === 1 ? 'one timed run' : `median of ${reps}`;
    const q = randn(shape, { seed: 1 }).requireGrad();
    const k = randn(shape, { seed: 2 }).requireGrad();
    const v = randn(shape, { seed: 3 }).requireGrad();
    const dy = randn(shape, { seed: 4 });
    const future = new Int32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) future[i * T + j] = 1;
    const mask = tensor(future, [T, T], { dtype: 'i32' });
    const scoreBytes = H * T * T * 4;
    const impls: { impl: string; fwd: () => Promise<void>; fwdBwd: () => Promise<void> }[] = [
      {
        impl: 'huatuo',
        fwd: async () => {
          const o = attention(q, k, v, { causal: true });
          await readFew(o);
          o.dispose();
        },
        fwdBwd: async () => {
          const o = attention(q, k, v, { causal: true });
          backward(o, dy);
          await readFew(q.grad!);
          o.dispose();
          freeGrads(q, k, v);
        },
      },
    ];
    if (scoreBytes <= limit) {
      impls.push({
        impl: 'unfused',
        fwd: async () => {
          const { o, temps } = unfusedAttention(q, k, v, mask);
          await readFew(o);
          for (const t of [o, ...temps]) t.dispose();
        },
        fwdBwd: async () => {
          const { o, temps } = unfusedAttention(q, k, v, mask);
          backward(o, dy);
          await readFew(q.grad!);
          for (const t of [o, ...temps]) t.dispose();
          freeGrads(q, k, v);
        },
      });
    } else {
      ctx.log(`attention unfused ${name}: skipped, the [H, T, T] f32 scores (${scoreBytes / MiB} MiB) exceed the ${limit / MiB} MiB binding limit`);
    }
    for (const { impl, fwd, fwdBwd } of impls) {
      for (const [bench, fn, flops] of [
        ['attention fwd', fwd, fwdFlops],
        ['attention fwd+bwd', fwdBwd, fwdFlops * 3.5],
      ] as const) {
        const peak = await peakBytes(fn);
        const bytes = peak.bytes;
        const ms = reps === 0 ? peak.ms : await timeMedian(fn, reps, 0);
        const gflops = flops / ms / 1e6;
        found.set(`${bench} ${impl} ${T}`, { ms, bytes });
        ctx.push({ bench, impl, dtype: 'f32', shape: name, ms, gflops, gbps: null, roofline: gflops / ctx.roof.gflops, note: `peak +${(bytes / MiB).toFixed(1)} MiB; ${runs}` });
      }
    }
    if (scoreBytes > limit) {
      ctx.push({ bench: 'attention fwd+bwd', impl: 'unfused', dtype: 'f32', shape: name, ms: NaN, gflops: null, gbps: null, note: `skipped: [H, T, T] scores of ${scoreBytes / MiB} MiB exceed the ${limit / MiB} MiB binding limit` });
    }
    for (const t of [q, k, v, dy, mask]) t.dispose();
  }
  // Target: attention fwd+bwd at T = 1024 uses O(T) extra memory and beats the unfused composition.
  const T = ctx.quick ? 512 : 1024;
  const f = found.get(`attention fwd+bwd huatuo ${T}`);
  const u = found.get(`attention fwd+bwd unfused ${T}`);
  if (f) {
    // O(T): q, k, v-sized tensors only (o, lse, dq, dk, dv, stats, dy copies): a few times H T D floats, not H T^2.
    const perQkv = H * T * D * 4;
    const linear = f.bytes <= 8 * perQkv;
    const faster = u ? f.ms < u.ms : false;
    lines.push(
      `- Attention fwd+bwd at T ${T}: peak +${(f.bytes / MiB).toFixed(1)} MiB = ${(f.bytes / perQkv).toFixed(1)}x one [H, T, D] tensor ` +
        `(the [H, T, T] scores alone are ${((H * T * T * 4) / MiB).toFixed(0)} MiB) -> O(T): ${linear ? 'met' : '**missed**'}; ` +
        (u ? `${f.ms.toFixed(0)} ms vs unfused ${u.ms.toFixed(0)} ms (${(u.ms / f.ms).toFixed(2)}x, peak +${(u.bytes / MiB).toFixed(0)} MiB): ${faster ? 'met' : '**missed**'}.` : 'no unfused row to compare.'),
    );
  }
  return lines;
}

/**
 * rmsNorm, crossEntropy, AdamW and swiglu (fused and unfused) bandwidth rows, then those of
 * bench/elementwise.bench.ts and bench/layers.bench.ts; returns the summary line of all of them.
 */
export async function benchMemoryBound(ctx: BenchContext): Promise<string[]> {
  const lines: string[] = [];
  const start = ctx.push;
  const rows: Omit<Row, 'adapter'>[] = [];
  ctx = { ...ctx, push: (r) => (rows.push(r), start(r)) };
  // rmsNorm [256, 4096].
  {
    const [R, C] = [256, 4096];
    const n = R * C * 4;
    const x = randn([R, C], { seed: 1 }).requireGrad();
    const w = randn([C], { seed: 2 });
    const dy = randn([R, C], { seed: 3 });
    await bandwidthRow(ctx, 'rmsNorm fwd', 'huatuo', `${R}x${C}`, 2 * n, 'traffic: read x, write y', async () => {
      const y = rmsNorm(x, w, 1e-6);
      await readFew(y);
      y.dispose();
    });
    await bandwidthRow(ctx, 'rmsNorm fwd+bwd', 'huatuo', `${R}x${C}`, 5 * n, 'traffic: fwd read x, write y; bwd read x, dy, write dx', async () => {
      const y = rmsNorm(x, w, 1e-6);
      backward(y, dy);
      await readFew(x.grad!);
      y.dispose();
      freeGrads(x);
    });
    for (const t of [x, w, dy]) t.dispose();
  }
  // crossEntropy [256, 32000].
  {
    const [N, V] = [256, 32000];
    const n = N * V * 4;
    const logits = randn([N, V], { seed: 4 }).requireGrad();
    const t = new Int32Array(N);
    for (let i = 0; i < N; i++) t[i] = (i * 7919) % V;
    const targets = tensor(t, [N], { dtype: 'i32' });
    await bandwidthRow(ctx, 'crossEntropy fwd+bwd', 'huatuo', `${N}x${V}`, 3 * n, 'traffic: fwd read logits; bwd read logits, write dlogits', async () => {
      const loss = crossEntropy(logits, targets);
      loss.backward();
      await readFew(logits.grad!);
      loss.dispose();
      freeGrads(logits);
    });
    logits.dispose();
    targets.dispose();
  }
  // AdamW over 16M parameters, one step.
  {
    const P = 16 * MiB;
    const p = randn([P], { seed: 5 }).requireGrad();
    p.grad = randn([P], { seed: 6 });
    const opt = new AdamW([p], { lr: 1e-4 });
    await bandwidthRow(ctx, 'AdamW step', 'huatuo', '16M params', 28 * P, 'traffic: read p, g, m, v, write p, m, v (28 B/param)', async () => {
      opt.step();
      await readFew(p);
    });
    opt.zeroGrad();
    opt.dispose();
    p.dispose();
  }
  // swiglu [256, 11008], fused and as silu then mul.
  {
    const [R, I] = [256, 11008];
    const n = R * I * 4;
    const g = randn([R, I], { seed: 7 }).requireGrad();
    const u = randn([R, I], { seed: 8 }).requireGrad();
    const dy = randn([R, I], { seed: 9 });
    for (const [impl, f] of [
      ['huatuo', swiglu],
      ['unfused', (a: Tensor, b: Tensor) => mul(silu(a), b)],
    ] as const) {
      await bandwidthRow(ctx, 'swiglu fwd', impl, `${R}x${I}`, 3 * n, 'traffic: read gate, up, write y', async () => {
        const y = f(g, u);
        await readFew(y);
        y.dispose();
      });
      await bandwidthRow(ctx, 'swiglu fwd+bwd', impl, `${R}x${I}`, 8 * n, 'traffic: fwd read gate, up, write y; bwd read gate, up, dy, write dgate, dup', async () => {
        const y = f(g, u);
        backward(y, dy);
        await readFew(g.grad!);
        y.dispose();
        freeGrads(g, u);
      });
    }
    for (const t of [g, u, dy]) t.dispose();
  }
  await benchElementwise(ctx);
  await benchLayers(ctx);
  const fused = rows.filter((r) => r.impl === 'huatuo');
  lines.push(
    `- Memory-bound kernels, share of the copy kernel's ${ctx.roof.copyGbps.toFixed(1)} GB/s read+write: ` +
      fused.map((r) => `${r.bench} ${r.shape} ${((r.roofline ?? 0) * 100).toFixed(0)} %`).join(', ') + '.',
  );
  return lines;
}

/**
 * The penalties of one decoding step over LLaMA's vocabulary (V 32000) at batch 1 and 8: OpenAI's
 * frequency and presence penalties over the rows' counts and their increment with the step's picks,
 * beside Hugging Face's repetition penalty over a bit mask and its marking, and OpenAI's logit_bias (16
 * biased tokens in a dense f32 row), and best_of's running sums of the picks' log-probabilities. Each row has
 * generated 64 tokens. The increments touch one element a row, so their rows show the dispatch's kernel time.
 */
export async function benchPenalties(ctx: BenchContext): Promise<void> {
  const V = 32000;
  const rt = getRuntime();
  for (const B of [1, 8]) {
    const shape = `${B}x${V}`;
    const n = B * V * 4;
    const logits = randn([B, V], { seed: 10 + B });
    const generated = Array.from({ length: B }, (_, b) => Array.from({ length: 64 }, (_, i) => (b * 7919 + i * 104729) % V));
    const picks = tensor(new Int32Array(B).map((_, b) => (b * 31337) % V), [B], { dtype: 'i32' });
    const counts = tokenCounts(generated, V);
    const seen = seenMask(generated, V);
    await bandwidthRow(ctx, 'frequencyPresencePenalty', 'huatuo', shape, 3 * n, 'traffic: read logits and i32 counts, write logits', async () => {
      const y = frequencyPresencePenalty(logits, counts, 0.5, 0.3);
      await rt.sync();
      y.dispose();
    });
    await bandwidthRow(ctx, 'countTokens', 'huatuo', shape, 3 * B * 4, 'traffic: read one id a row, read and write its count', async () => {
      countTokens(counts, picks);
      await rt.sync();
    });
    await bandwidthRow(ctx, 'repetitionPenalty', 'huatuo', shape, 2 * n + B * Math.ceil(V / 32) * 4, 'traffic: read logits and the seen bit mask, write logits', async () => {
      const y = repetitionPenalty(logits, seen, 1.2);
      await rt.sync();
      y.dispose();
    });
    await bandwidthRow(ctx, 'markSeen', 'huatuo', shape, 3 * B * 4, 'traffic: read one id a row, read and write its mask word', async () => {
      markSeen(seen, picks, V);
      await rt.sync();
    });
    const biasRow = logitBiasRow(new Map(Array.from({ length: 16 }, (_, i) => [(i * 104729) % V, i % 2 === 0 ? -100 : 5])), V);
    await bandwidthRow(ctx, 'logitBias', 'huatuo', shape, 2 * n + V * 4, 'traffic: read logits and the f32 bias row, write logits', async () => {
      const y = logitBias(logits, biasRow);
      await rt.sync();
      y.dispose();
    });
    const [total, before, picked, active] = [randn([B], { seed: 20 + B }), randn([B], { seed: 30 + B }), randn([B], { seed: 40 + B }), tensor(new Float32Array(B).fill(1), [B])];
    await bandwidthRow(ctx, 'accumulateLogprobs', 'huatuo', String(B), 5 * B * 4, 'traffic: read a log-probability, an active flag and the sum a row, write the sum and the sum before', async () => {
      accumulateLogprobs(total, before, picked, active);
      await rt.sync();
    });
    for (const t of [logits, picks, counts, seen, biasRow, total, before, picked, active]) t.dispose();
  }
}

/**
 * The log-probabilities a server returns over LLaMA's vocabulary (V 32000) and Qwen2's (V 151936): a
 * decoding step's picks with the top 5 and 20 (B 1 and 8), and, over LLaMA's, a 512-token prompt's next
 * tokens with the top 1 (echo). The kernel reads each row twice for k <= 20 (max and sum, then the entries
 * at or above a bound on the k-th largest), so the rows count that traffic. Beside the decoding rows, a greedy
 * pick's log-probability (logSoftmaxAtMax, best_of's term under greedy decoding), one read of each row.
 */
export async function benchLogprobs(ctx: BenchContext): Promise<void> {
  const rt = getRuntime();
  for (const [V, R, k] of [[32000, 1, 5], [32000, 1, 20], [32000, 8, 5], [32000, 8, 20], [32000, 512, 1], [151936, 1, 5], [151936, 1, 20], [151936, 8, 5], [151936, 8, 20]] as const) {
    const logits = randn([R, V], { seed: 30 + R + k });
    const targets = tensor(new Int32Array(R).map((_, r) => (r * 31337) % V), [R], { dtype: 'i32' });
    await bandwidthRow(ctx, `logSoftmaxTopK k=${k}`, 'huatuo', `${R}x${V}`, 2 * R * V * 4 + R * (k + 1) * 8, 'traffic: read the logits twice, write k + 1 pairs a row', async () => {
      const y = logSoftmaxTopK(logits, targets, k);
      await rt.sync();
      y.dispose();
    });
    if (k === 5) {
      await bandwidthRow(ctx, 'logSoftmaxAtMax', 'huatuo', `${R}x${V}`, R * V * 4 + R * 4, 'traffic: read the logits once, write one log-probability a row', async () => {
        const y = logSoftmaxAtMax(logits);
        await rt.sync();
        y.dispose();
      });
    }
    logits.dispose();
    targets.dispose();
  }
}

/**
 * A biased projection (Qwen2-0.5B's q_proj, 896 -> 896, over a prefill of 256 rows and one decoding row):
 * the plain product beside linear(x, w, b), whose kernels add the bias before their one rounding, and beside
 * the composition it replaces (matmul, then add: a second dispatch that reads and writes the output again);
 * and the same over the weight quantized (int8, NF4: the plain product, the product with its bias, the
 * product then add).
 */
export async function benchBiasedLinear(ctx: BenchContext): Promise<void> {
  const [K, N] = [896, 896];
  const wHost = (await toArray(randn([N, K], { seed: 21 }))) as Float32Array;
  const quant = { int8: QuantizedWeight.upload(quantizeHost(wHost, N, K, 'int8')), nf4: QuantizedWeight.upload(quantizeHost(wHost, N, K, 'nf4')) };
  for (const dtype of hasF16() ? (['f32', 'f16'] as const) : (['f32'] as const)) {
    const w = cast(randn([N, K], { seed: 21 }), dtype);
    const b = cast(randn([N], { seed: 22 }), dtype);
    for (const M of [256, 1]) {
      const x = cast(randn([M, K], { seed: 20 + M }), dtype);
      for (const [impl, f] of [
        ['matmul', () => matmul(x, transpose(w))],
        ['linear+bias', () => linear(x, w, b)],
        ['matmul, add', () => add(matmul(x, transpose(w)), b)],
        ['int8', () => quantizedMatmul(x, quant.int8)],
        ['int8+bias', () => quantizedMatmul(x, quant.int8, b)],
        ['int8, add', () => add(quantizedMatmul(x, quant.int8), b)],
        ['nf4', () => quantizedMatmul(x, quant.nf4)],
        ['nf4+bias', () => quantizedMatmul(x, quant.nf4, b)],
        ['nf4, add', () => add(quantizedMatmul(x, quant.nf4), b)],
      ] as const) {
        const ms = await timeMedian(
          async () => {
            const y = f();
            await readFew(y);
            y.dispose();
          },
          ctx.reps,
          1,
          `${impl} ${dtype} ${M}x${K}x${N}`,
        );
        const gflops = (2 * M * K * N) / ms / 1e6;
        ctx.push({ bench: 'biased projection', impl, dtype, shape: `${M}x${K}x${N}`, ms, gflops, gbps: null, roofline: gflops / ctx.roof.gflops, ...(impl === 'matmul' || impl === 'int8' || impl === 'nf4' ? { note: 'no bias' } : {}) });
      }
      x.dispose();
    }
    for (const t of [w, b]) t.dispose();
  }
  quant.int8.dispose();
  quant.nf4.dispose();
}

/** Attention, the memory-bound rows, the biased projection, the sampling penalties and the log-probabilities; returns target lines for the summary. */
export async function benchKernels(ctx: BenchContext): Promise<string[]> {
  const lines = [...(await benchAttention(ctx)), ...(await benchMemoryBound(ctx))];
  await benchBiasedLinear(ctx);
  await benchPenalties(ctx);
  await benchLogprobs(ctx);
  return [...lines, ...(await benchDecodeFused(ctx))];
}
