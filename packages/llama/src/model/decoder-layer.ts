// One LLaMA decoder block (Hugging Face's LlamaDecoderLayer, and MistralDecoderLayer with its sliding
// window): RMSNorm, attention with rotate_half RoPE and grouped-query heads, SwiGLU MLP (in row chunks
// past the binding limit), both residual.

import {
  add, attention, cat, FUSED_LINEAR_MAX_ROWS, fusedLinear, fusedLinearAdd, fusedLinearPreferred, fusedLinearSwiglu, isGradEnabled, reshape, rmsNorm,
  QuantizedWeight, rope, slice, swiglu, transpose, type FusedWeight, type RopeFrequencies, type Tensor,
} from '@huatuo/tensor';
import { AdapterPacks, fusedGroup } from './fused-adapters.js';
import type { KvCache } from './kv-cache.js';
import type { Linear } from './linear.js';
import { mlpChunkRows } from './tensor-sizes.js';
import type { LlamaModel } from './model.js';

/** The dropout seed of projection `k` (0 q ... 6 down) from a layer's seed (undefined: no dropout). */
function projSeed(seed: number | undefined, k: number): number | undefined {
  return seed === undefined ? undefined : (seed + Math.imul(k + 1, 0x632be5ab)) >>> 0;
}

/** [B, T, n D] -> [B, n, T, D] (a view when t is contiguous). */
function heads(t: Tensor, n: number, D: number): Tensor {
  return transpose(reshape(t, [t.shape[0]!, t.shape[1]!, n, D]), 1, 2);
}

/** Output rows of a fused weight. */
function weightRows(w: FusedWeight): number {
  return w instanceof QuantizedWeight ? w.rows : w.shape[0]!;
}

/** One decoder block: pre-norm attention and pre-norm SwiGLU MLP, each added to the residual. */
export class DecoderLayer {
  /** B matrices of the unmerged adapters of q/k/v and of gate/up, packed for the fused decode products; freed when an adapter changes. */
  private readonly packs = new AdapterPacks();
  /** Counts the changes of its projections' adapters (replaced, merged, unmerged): a recorded decode step reads the old ones. */
  adapterChanges = 0;

  constructor(
    readonly index: number,
    /** [C] */
    public inputNorm: Tensor,
    readonly qProj: Linear,
    readonly kProj: Linear,
    readonly vProj: Linear,
    readonly oProj: Linear,
    /** [C] */
    public postNorm: Tensor,
    readonly gateProj: Linear,
    readonly upProj: Linear,
    readonly downProj: Linear,
  ) {
    for (const l of this.linears()) {
      l.onAdapterChange = () => {
        this.packs.dispose();
        this.adapterChanges++;
      };
    }
  }

  /** The seven projections, in PEFT target-module order. */
  linears(): Linear[] {
    return [this.qProj, this.kProj, this.vProj, this.oProj, this.gateProj, this.upProj, this.downProj];
  }

  /** Trainable leaves read by this layer (the adapters' A and B, and DoRA's magnitudes), for checkpointing. */
  trainableParameters(): Tensor[] {
    const out: Tensor[] = [];
    for (const l of this.linears()) {
      if (l.lora !== null && !l.merged) out.push(l.lora.A, l.lora.B);
      if (l.lora?.magnitude && !l.merged) out.push(l.lora.magnitude);
    }
    return out.filter((t) => t.requiresGrad);
  }

  /**
   * x [B, T, C] -> [B, T, C]. `seed` (undefined: no dropout) gives each adapter its dropout mask,
   * so that a recomputation under checkpointing draws the same masks. `freq`: RoPE's frequencies for
   * this forward (default: the model's, see LlamaModel.rotary).
   */
  forward(model: LlamaModel, x: Tensor, positions: Tensor, mask: Tensor | null, cache: KvCache | undefined, seed?: number, freq: RopeFrequencies = model.rotary.forPositions(positions)): Tensor {
    const c = model.config;
    const [B, T] = [x.shape[0]!, x.shape[1]!];
    // Each projection's adapter draws its own dropout mask, as PEFT's per-module dropouts do.
    // Attention.
    // Decoding (inference, a few rows): fused products where the projections are single weights (dense or quantized), adapters and q/k/v's biases added in their epilogues.
    const fuse = !isGradEnabled() && B * T <= FUSED_LINEAR_MAX_ROWS && fusedLinearPreferred();
    let q: Tensor, k: Tensor, v: Tensor;
    if (cache !== undefined && !isGradEnabled()) {
      const [qp, kp, vp] = this.qkv(x, c.rmsNormEps, fuse, seed === undefined ? undefined : (i) => projSeed(seed, i)); // [B, T, H D], [B, T, Hkv D] x2
      // RoPE and the cache writes in one dispatch.
      ({ q, k, v } = cache.appendRoped(this.index, qp, kp, vp, positions, freq)); // [B, H, T, D], [B, Hkv, S, D] x2
    } else {
      const h = rmsNorm(x, this.inputNorm, c.rmsNormEps); // [B, T, C]
      const qp = this.qProj.forward(h, projSeed(seed, 0)); // [B, T, H D]
      const kp = this.kProj.forward(h, projSeed(seed, 1)); // [B, T, Hkv D]
      const vp = this.vProj.forward(h, projSeed(seed, 2)); // [B, T, Hkv D]
      q = rope(heads(qp, c.numAttentionHeads, c.headDim), positions, freq); // [B, H, T, D]
      k = rope(heads(kp, c.numKeyValueHeads, c.headDim), positions, freq); // [B, Hkv, T, D]
      v = heads(vp, c.numKeyValueHeads, c.headDim); // [B, Hkv, T, D]
      if (cache !== undefined) ({ k, v } = cache.append(this.index, k, v)); // [B, Hkv, S, D]
    }
    const y = attention(q, k, v, { causal: true, window: c.slidingWindow, keyPaddingMask: mask }); // [B, H, T, D]
    const merged = reshape(transpose(y, 1, 2), [B, T, c.numAttentionHeads * c.headDim]); // [B, T, H D]
    x = this.residual(x, this.oProj, merged, fuse, projSeed(seed, 3)); // [B, T, C]
    // MLP: the post-attention norm, gate and up with SwiGLU in one pass where they fit.
    const postNorm = { weight: this.postNorm, eps: c.rmsNormEps };
    const gateUp = fuse ? fusedGroup(x, [this.gateProj, this.upProj], postNorm, this.packs, 'gate_up') : null;
    if (gateUp !== null) {
      const inner = fusedLinearSwiglu(x, gateUp.weights[0]!, gateUp.weights[1]!, postNorm, gateUp.lora); // [B, T, I]
      return this.residual(x, this.downProj, inner, fuse, projSeed(seed, 6)); // [B, T, C]
    }
    const h2 = rmsNorm(x, this.postNorm, c.rmsNormEps); // [B, T, C]
    const rows = mlpChunkRows(B * T, c.intermediateSize, model.dtype, model.maxBindingBytes);
    if (rows >= B * T) {
      const inner = swiglu(this.gateProj.forward(h2, projSeed(seed, 4)), this.upProj.forward(h2, projSeed(seed, 5))); // [B, T, I]
      return this.residual(x, this.downProj, inner, fuse, projSeed(seed, 6)); // [B, T, C]
    }
    // [B, T, I] is over the binding limit: the MLP runs on chunks of token rows (each row is independent).
    const flat = reshape(h2, [B * T, c.hiddenSize]); // [N, C]
    const outs: Tensor[] = [];
    for (let s = 0, k = 0; s < B * T; s += rows, k++) {
      outs.push(this.mlp(slice(flat, 0, s, s + rows), seed === undefined ? undefined : (i) => projSeed(seed, i + 3 * (k + 1)))); // [n, C]
    }
    return add(x, reshape(cat(outs, 0), [B, T, c.hiddenSize])); // [B, T, C]
  }

  /** SwiGLU MLP down(silu(gate(h)) * up(h)): [..., C] -> [..., C]; `seeds(i)` gives gate's (4), up's (5) and down's (6) dropout seeds. */
  private mlp(h: Tensor, seeds: ((i: number) => number | undefined) | undefined): Tensor {
    const inner = swiglu(this.gateProj.forward(h, seeds?.(4)), this.upProj.forward(h, seeds?.(5))); // [..., I]
    return this.downProj.forward(inner, seeds?.(6));
  }

  /**
   * x + proj(y), the residual added in a product's epilogue: the fused decode product's (with proj's adapter) when
   * `fuse` and proj's weight fits, else proj's own (Linear.forwardAdd).
   */
  private residual(x: Tensor, proj: Linear, y: Tensor, fuse: boolean, seed: number | undefined): Tensor {
    const g = fuse ? fusedGroup(y, [proj], undefined, this.packs, proj.name) : null;
    if (g !== null) return fusedLinearAdd(x, y, g.weights[0]!, g.lora);
    return proj.forwardAdd(x, y, seed);
  }

  /**
   * The q, k and v projections of the input norm of x: the norm and the three products (with their biases,
   * Qwen2's) in one pass when `fuse` and all three weights fit (then column views of one output), after one
   * pass for their adapters.
   */
  private qkv(x: Tensor, eps: number, fuse: boolean, seeds: ((i: number) => number | undefined) | undefined): [Tensor, Tensor, Tensor] {
    const norm = { weight: this.inputNorm, eps };
    const g = fuse ? fusedGroup(x, [this.qProj, this.kProj, this.vProj], norm, this.packs, 'qkv', true) : null;
    if (g !== null) {
      const [nq, nk] = [weightRows(g.weights[0]!), weightRows(g.weights[1]!)];
      const all = fusedLinear(x, g.weights, norm, g.lora, g.bias); // [B, T, nq + 2 nk]
      return [slice(all, 2, 0, nq), slice(all, 2, nq, nq + nk), slice(all, 2, nq + nk, nq + 2 * nk)];
    }
    const h = rmsNorm(x, this.inputNorm, eps); // [B, T, C]
    return [this.qProj.forward(h, seeds?.(0)), this.kProj.forward(h, seeds?.(1)), this.vProj.forward(h, seeds?.(2))];
  }
}
