// The rotary embedding's frequencies per forward: the config's rope_theta and rope_scaling as a RopeSpec
// (yarn's original_max_position_embeddings falling back to max_position_embeddings, as in transformers),
// with transformers' dynamic NTK update (LlamaRotaryEmbedding's state of the longest sequence seen).

import type { RopeSpec, Tensor } from '@huatuo/tensor';
import type { LlamaConfig } from '../formats/config.js';
import { ModelError } from '../errors.js';

/**
 * RoPE frequencies of one model. For rope_scaling "dynamic" it holds transformers' state: the sequence
 * length L its frequencies were computed for (initially max_position_embeddings M). A forward whose
 * sequence length S = max(positions) + 1 exceeds L recomputes them for L = S (growth); one with S < M
 * after growth returns to the initial frequencies (reset); otherwise the last ones are kept. Like
 * transformers, keys already in a KV cache keep the rotation they were written with: only the new
 * queries and keys of each forward use the current frequencies.
 */
export class RotaryFrequencies {
  private readonly fixed: RopeSpec | null;
  /** transformers' max_seq_len_cached (dynamic scaling only). */
  private seqLenCached: number;

  constructor(readonly config: LlamaConfig) {
    const s = config.ropeScaling;
    this.seqLenCached = config.maxPositionEmbeddings;
    this.fixed =
      s === null
        ? { theta: config.ropeTheta }
        : s.type === 'linear'
          ? { theta: config.ropeTheta, scaling: { type: 'linear', factor: s.factor } }
          : s.type === 'llama3'
            ? { theta: config.ropeTheta, scaling: { ...s } }
            : s.type === 'yarn'
              ? { theta: config.ropeTheta, scaling: { ...s, originalMaxPositionEmbeddings: s.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings } }
              : null;
  }

  /** The sequence length dynamic scaling's frequencies are computed for now (M until a longer forward). */
  get cachedSeqLen(): number {
    return this.seqLenCached;
  }

  /**
   * The frequencies of a forward over `positions` (i32 [T] or [B, T]), after the dynamic update. Dynamic
   * scaling reads the positions' host copy; device-resident positions are refused.
   */
  forPositions(positions: Tensor): RopeSpec {
    if (this.fixed !== null) return this.fixed;
    const s = this.config.ropeScaling!;
    const M = this.config.maxPositionEmbeddings;
    const host = positions.hostIndices();
    if (host === null) {
      throw new ModelError('forward: rope_scaling "dynamic" sets its frequencies from the largest position, which needs positions created from host data (tensor(Int32Array)), not a view or a GPU result');
    }
    if (host.length > 0) {
      let S = 0;
      for (const p of host) S = Math.max(S, p + 1);
      if (S > this.seqLenCached) this.seqLenCached = S;
      if (S < M && this.seqLenCached > M) this.seqLenCached = M;
    }
    return { theta: this.config.ropeTheta, scaling: { type: 'dynamic', factor: s.factor, maxPositionEmbeddings: M, seqLen: this.seqLenCached } };
  }
}
