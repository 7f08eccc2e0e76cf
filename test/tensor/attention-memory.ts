// Measures the GPU memory that one causal attention forward and backward add at T = S = 1024,
// for the memory tests of every attention variant.
import { attention, runtimeStats, synchronize, tensor, type Tensor } from '@huatuo/tensor';
import { seededValues } from './helpers.js';

/** Bytes in use, and in use plus pooled, from the runtime's counters. */
function footprint(): { inUse: number; total: number } {
  const s = runtimeStats();
  return { inUse: s.bytesInUse, total: s.bytesInUse + s.bytesPooled };
}

export interface AttentionMemory {
  /** Bytes the forward keeps in use (its output and logsumexp). */
  forwardKept: number;
  /** Growth of in-use plus pooled bytes over the forward and over the backward. */
  forwardExtra: number;
  backwardExtra: number;
  /** One [B, H, T, D] f32 tensor, and one head's T x T f32 score matrix. */
  tensorBytes: number;
  scoreMatrixPerHead: number;
  /** B * H * T, for per-row statistics. */
  rows: number;
  output: Float32Array;
}

/** Runs attention forward and backward on [1, 2, 1024, D] inputs and reports the memory it added. */
export async function measureAttentionMemory(D: number): Promise<AttentionMemory> {
  const [B, H, T] = [1, 2, 1024];
  const shape = [B, H, T, D];
  const q = tensor(seededValues(B * H * T * D, 81), shape, { requiresGrad: true });
  const k = tensor(seededValues(B * H * T * D, 82), shape, { requiresGrad: true });
  const v = tensor(seededValues(B * H * T * D, 83), shape, { requiresGrad: true });
  const g = tensor(seededValues(B * H * T * D, 84), shape);
  await synchronize();
  const before = footprint();
  const out: Tensor = attention(q, k, v);
  await synchronize();
  const afterForward = footprint();
  out.backward(g);
  await synchronize();
  const afterBackward = footprint();
  const output = (await out.toArray()) as Float32Array;
  for (const x of [q, k, v, g, out]) x.dispose();
  return {
    forwardKept: afterForward.inUse - before.inUse,
    forwardExtra: afterForward.total - before.total,
    backwardExtra: afterBackward.total - afterForward.total,
    tensorBytes: B * H * T * D * 4,
    scoreMatrixPerHead: T * T * 4,
    rows: B * H * T,
    output,
  };
}
