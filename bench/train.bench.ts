// A LoRA training step as HuaTuo trains (r 8, alpha 16, dropout 0.05 on q_proj and v_proj; AdamW;
// clip to norm 1): forward, loss, backward, clip, AdamW, read the loss. Tokens/s, wall ms per step,
// and the kernels' GPU time (timestamp queries of one profiled step) as a share of the wall time.
// In f32, and in mixed precision (f16 base and activations, f32 LoRA and AdamW, loss scaling) where
// the adapter has shader-f16.
import { AdamW, clipGradNorm, GradScaler, hasF16, profile, readyAttention, startScope, tensor, type Tensor } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, type LlamaConfig, type LlamaModel } from '@huatuo/llama';
import type { BenchContext } from './kernels.bench.js';
import { timeMedian } from './timing.js';

/** A benchmarked model: its name, config and sequence length (batch 1). */
export interface TrainConfig {
  name: string;
  config: LlamaConfig;
  seq: number;
  /** Parameters of the base model. */
  params: number;
  note?: string;
}

/** The tiny preset (2 layers, dim 64) and a ~134M-parameter config (dim 768, 12 layers; fewer layers with --quick). */
export function trainConfigs(quick: boolean): TrainConfig[] {
  const tiny = configFromPreset('tiny');
  const layers = quick ? 2 : 12;
  const big = configFromPreset('tiny', {
    hiddenSize: 768,
    intermediateSize: 2048,
    numHiddenLayers: layers,
    numAttentionHeads: 12,
    numKeyValueHeads: 12,
    maxPositionEmbeddings: 512,
  });
  const count = (c: LlamaConfig) => {
    const C = c.hiddenSize;
    const kv = c.numKeyValueHeads * c.headDim;
    const layer = C * C * 2 + C * kv * 2 + 3 * C * c.intermediateSize + 2 * C;
    return c.vocabSize * C * (c.tieWordEmbeddings ? 1 : 2) + c.numHiddenLayers * layer + C;
  };
  return [
    { name: 'tiny', config: tiny, seq: 256, params: count(tiny) },
    { name: `dim768 L${layers}`, config: big, seq: 256, params: count(big), ...(quick ? { note: 'quick: 2 of the 12 layers' } : {}) },
  ];
}

/** Seeded token ids in [3, V): the step's input and labels ([1, T] i32). */
export function tokenIds(T: number, V: number, seed: number): Int32Array {
  const ids = new Int32Array(T);
  let s = seed >>> 0;
  for (let i = 0; i < T; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids[i] = 3 + (s % (V - 3));
  }
  return ids;
}

/** Tokens/s of each config's step, by config name, for the PyTorch comparison. */
export type TrainResults = Map<string, { tokensPerSec: number; ms: number }>;

/** The precisions a step is timed in: mixed only where the adapter has shader-f16. */
export function benchPrecisions(): ('f32' | 'mixed')[] {
  return hasF16() ? ['f32', 'mixed'] : ['f32'];
}

/** A model of `tc` with HuaTuo's adapter and one training step as the trainer runs it in `precision`. */
export function trainStep(tc: TrainConfig, precision: 'f32' | 'mixed'): { step: () => Promise<number>; dispose: () => void; model: LlamaModel } {
  const { config, seq: T } = tc;
  const model = createRandomLlama(config, { seed: 1, dtype: precision === 'mixed' ? 'f16' : 'f32' });
  model.training = true;
  const params = applyLora(model, { r: 8, alpha: 16, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] }, { seed: 2 });
  const opt = new AdamW(params, { lr: 1e-4 });
  const scaler = new GradScaler({ enabled: precision === 'mixed' });
  const ids = tensor(tokenIds(T, config.vocabSize, 3), [1, T], { dtype: 'i32' });
  // Every step, the first timed one too, uses the same attention kernels.
  const ready = readyAttention({ headDim: config.headDim, dtypes: [model.dtype], backward: true });
  const step = async () => {
    await ready;
    const s = startScope();
    try {
      const loss: Tensor = model.loss(ids, ids);
      scaler.scale(loss).backward();
      scaler.unscale(opt);
      clipGradNorm(params, 1);
      await scaler.step(opt);
      scaler.update();
      opt.zeroGrad();
      return await loss.item();
    } finally {
      s.end();
    }
  };
  const dispose = () => {
    opt.zeroGrad();
    opt.dispose();
    ids.dispose();
    model.dispose();
  };
  return { step, dispose, model };
}

export async function benchTrain(ctx: BenchContext): Promise<{ lines: string[]; results: TrainResults }> {
  const lines: string[] = [];
  const results: TrainResults = new Map();
  for (const tc of trainConfigs(ctx.quick)) {
    for (const precision of benchPrecisions()) {
      const { step, dispose } = trainStep(tc, precision);
      const T = tc.seq;
      const reps = tc.params > 5e7 ? 3 : ctx.reps;
      const ms = await timeMedian(step, reps, 2);
      const { report } = await profile(step);
      // The share within the profiled step itself (its wall time includes the profiler's own passes).
      const share = report.source === 'timestamp-query' ? report.gpuMs / report.wallMs : NaN;
      const tokensPerSec = (T * 1000) / ms;
      if (precision === 'f32') results.set(tc.name, { tokensPerSec, ms });
      const shape = `${tc.name} (${(tc.params / 1e6).toFixed(0)}M) B1 T${T}`;
      const top = report.kernels.slice(0, 3).map((k) => `${k.label} ${(k.ms ?? 0).toFixed(0)} ms`).join(', ');
      const note = `${tokensPerSec.toFixed(0)} tokens/s; kernel time ${report.gpuMs.toFixed(0)} ms = ${(share * 100).toFixed(0)} % of the profiled step's wall ${report.wallMs.toFixed(0)} ms (${report.source}); ${report.kernels.reduce((n, k) => n + k.count, 0)} dispatches; top: ${top}${tc.note ? `; ${tc.note}` : ''}`;
      ctx.push({ bench: 'llama train step', impl: 'huatuo', dtype: precision === 'mixed' ? 'mixed f16' : 'f32', shape, ms, gflops: null, gbps: null, note });
      lines.push(`- Training step ${shape}, ${precision}: kernel time ${(share * 100).toFixed(0)} % of the profiled step's wall ${report.wallMs.toFixed(0)} ms (unprofiled median ${ms.toFixed(0)} ms; target >= 80 %): ${share >= 0.8 ? 'met' : '**missed**'}; ${tokensPerSec.toFixed(0)} tokens/s.`);
      dispose();
    }
  }
  return { lines, results };
}
