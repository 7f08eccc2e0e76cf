// A projection y = x W^T (+ b where the checkpoint has a bias: Qwen2's q, k and v, rounded once with the product as
// F.linear rounds) with W stored as
// Hugging Face does ([out, in]) and read transposed in place; W may be split along its rows (outputs) into several buffers when it
// exceeds the adapter's binding limit, or quantized (int8, NF4) and dequantized inside the matmul.
// An optional LoRA adapter adds B(A(dropout(x))) * scaling (alpha / r, or alpha / sqrt(r) with rsLoRA) to the output
// with its bias, as PEFT does (in the second product's epilogue, torch.addmm's), with DoRA rescaled per output row by m / ||W + scaling B A|| (the bias left unscaled, as
// PEFT leaves it); at inference its matrices' casts to the activations' dtype are
// kept while the matrices are unchanged (their storage version); decoding adds a plain LoRA update in one fused
// dispatch after the down-projection h = x A^T where the fused products run.

import {
  add, cast, cat, div, dropout, FUSED_LINEAR_MAX_ROWS, fusedLinear, fusedLinearFits, fusedLinearPreferred, fusedLoraAdd, fusedLoraAddFits, isGradEnabled, keep, linear, linearAdd, matmul, mul, noGrad,
  quantizedMatmul, slice, sub, transpose, type FloatDType, type FusedWeight, type QuantizedWeight, type Tensor,
} from '@huatuo/tensor';
import { doraWeightNorm, rowSquares } from './dora.js';

/** A LoRA adapter of one projection: A [r, in] and B [out, r], f32 leaves that train. */
export interface LoraWeights {
  readonly A: Tensor;
  readonly B: Tensor;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's use_rslora); per module with rank_pattern / alpha_pattern. */
  readonly scaling: number;
  /** Dropout probability on the adapter's input while training. */
  readonly dropout: number;
  /** DoRA's magnitude m [out] (PEFT's lora_magnitude_vector), an f32 leaf that trains; absent or null for plain LoRA. */
  readonly magnitude?: Tensor | null;
}

/** A projection of a decoder layer or the lm_head. */
export class Linear {
  /** Weight rows, in order: one part [out, in], or several [rows_i, in] that concatenate to it. Frozen. Empty when quantized. */
  parts: Tensor[];
  /** The frozen weight [out, in] quantized (then `parts` is empty), or null. */
  quantized: QuantizedWeight | null;
  /** The frozen bias [out] in the model's dtype, or null (LLaMA's projections have none). A merge leaves it as it is. */
  bias: Tensor | null = null;
  private adapter: LoraWeights | null = null;
  private isMerged = false;
  /** A and B cast to the activations' dtype, outside autograd, with the storage versions they were cast at. */
  private casts: { A: CachedCast | null; B: CachedCast | null } = { A: null, B: null };
  /** DoRA: ||W_o||^2 of the frozen weight and ||W + scaling B A|| per row, kept while the weight and the matrices are unchanged. */
  private doraKept: { w2: KeptNorm | null; norm: KeptNorm | null } = { w2: null, norm: null };
  /** DoRA merged: the factor m / ||W + scaling B A|| [out] the weight was scaled by, to unmerge with (PEFT caches it too). */
  mergedScale: Tensor | null = null;
  /** Called when the adapter is replaced, merged or unmerged: its layer frees what it kept of the adapter for decoding. */
  onAdapterChange: (() => void) | null = null;

  constructor(
    /** Hugging Face name, e.g. `model.layers.0.self_attn.q_proj`. */
    readonly name: string,
    readonly outFeatures: number,
    readonly inFeatures: number,
    parts: Tensor[],
    quantized: QuantizedWeight | null = null,
  ) {
    this.parts = parts;
    this.quantized = quantized;
  }

  /** The LoRA adapter, or null. Setting it frees the casts kept of the previous one. */
  get lora(): LoraWeights | null {
    return this.adapter;
  }

  set lora(lora: LoraWeights | null) {
    this.dropCasts();
    this.adapter = lora;
  }

  /** Whether the adapter has been added into `parts` (then forward skips it). Changing it frees the kept casts. */
  get merged(): boolean {
    return this.isMerged;
  }

  set merged(merged: boolean) {
    if (merged !== this.isMerged) this.dropCasts();
    this.isMerged = merged;
  }

  /** Whether the adapter is DoRA (it has a magnitude vector). */
  get isDora(): boolean {
    return this.adapter?.magnitude !== undefined && this.adapter.magnitude !== null;
  }

  /**
   * The weight [out, in] when the base product is y = x W^T with W in one part or quantized, else null; the
   * bias and then an unmerged adapter come on top (a fused product adds the bias only when given it).
   */
  get baseWeight(): FusedWeight | null {
    return this.quantized ?? (this.parts.length === 1 ? this.parts[0]! : null);
  }

  /**
   * The unmerged adapter with A [r, in] and B [out, r] in `dtype` (kept casts where they are not recorded),
   * for a fused inference product; null without one or when merged.
   */
  inferenceAdapter(dtype: FloatDType): { A: Tensor; B: Tensor; scaling: number } | null {
    const lora = this.lora;
    if (lora === null || this.merged) return null;
    return { A: this.adapterMatrix('A', dtype), B: this.adapterMatrix('B', dtype), scaling: lora.scaling };
  }

  /**
   * y = x W^T (+ b) (+ the adapter's update), in PEFT's order: the base layer's output with its bias, then the
   * update on top; x [..., in] -> [..., out]. `dropoutSeed` enables the adapter's dropout (training).
   */
  forward(x: Tensor, dropoutSeed?: number): Tensor {
    const y = this.baseOutput(x); // [..., out]
    const lora = this.lora;
    if (lora === null || this.merged) return y;
    // DoRA rescales the whole output: it takes the separate products below, not the fused update.
    if (!this.isDora && dropoutSeed === undefined && this.fusedUpdateFits(x)) {
      // Decoding: h = x A^T, then y + T(T(h B^T) * scaling) in one dispatch.
      const { A, B, scaling } = this.inferenceAdapter(x.dtype as FloatDType)!;
      const h = fusedLinearFits(x, [A]) ? fusedLinear(x, [A]) : matmul(x, transpose(A)); // [..., r]
      if (fusedLoraAddFits(y, h, B)) return fusedLoraAdd(y, h, B, scaling); // [..., out]
      return add(y, mul(matmul(h, transpose(B)), scaling));
    }
    const A = this.adapterMatrix('A', x.dtype as FloatDType);
    const B = this.adapterMatrix('B', x.dtype as FloatDType);
    const dropped = dropoutSeed !== undefined && lora.dropout > 0;
    const xin = dropped ? dropout(x, lora.dropout, dropoutSeed) : x;
    // F.linear, as PEFT's lora_A and lora_B are nn.Linear: each weight's gradient is dy^T x over all rows in one
    // product, [out, in] as the leaf's .grad is (no sum over the batch, no copy of a transposed view).
    const h = linear(xin, A); // [..., r]
    // y + scaling (h B^T) in the second product's epilogue (addmm), rounded once.
    if (!this.isDora) return linearAdd(y, h, B, null, lora.scaling); // [..., out]
    const loraResult = linear(h, B); // [..., out]
    // DoRA as PEFT computes it: s = m / ||W + scaling B A|| (the norm held constant), y + ((s - 1) W xin + s B A xin
    // scaling), W xin being the base output less its bias unless dropout changed the adapter's input.
    const scale = div(lora.magnitude!, this.doraNorm()); // [out], f32: the gradient reaches m
    const s = scale.dtype === x.dtype ? scale : cast(scale, x.dtype);
    const base = dropped ? this.baseProduct(xin) : this.bias === null ? y : sub(y, this.bias); // [..., out]
    return add(y, add(mul(base, sub(s, 1)), mul(mul(loraResult, s), lora.scaling)));
  }

  /**
   * residual + forward(x), as a decoder layer's residual connection: the residual added in the base product's
   * epilogue (addmm, rounded once with the product) where the weight is one dense part and no unmerged adapter
   * comes on top; else a separate add after the projection, so that an adapter's update is added to the base
   * output first, as PEFT adds it. residual [..., out], x [..., in].
   */
  forwardAdd(residual: Tensor, x: Tensor, dropoutSeed?: number): Tensor {
    const w = this.quantized === null && this.parts.length === 1 ? this.parts[0]! : null;
    if (w !== null && (this.lora === null || this.merged) && residual.dtype === x.dtype) return linearAdd(residual, x, w, this.bias); // [..., out]
    return add(residual, this.forward(x, dropoutSeed));
  }

  /**
   * x W^T + b of the frozen weight and its bias, the f32 sums and the bias rounded once as F.linear (addmm)
   * rounds them (dense and quantized weights): x [..., in] -> [..., out]. A weight split into parts takes each part's slice of the bias.
   */
  private baseOutput(x: Tensor): Tensor {
    const b = this.bias;
    if (b === null) return this.baseProduct(x);
    if (this.quantized !== null) return quantizedMatmul(x, this.quantized, b);
    let at = 0;
    const outs = this.parts.map((w) => {
      const rows = w.shape[0]!;
      const y = linear(x, w, this.parts.length === 1 ? b : slice(b, 0, at, at + rows)); // [..., rows_i]
      at += rows;
      return y;
    });
    return outs.length === 1 ? outs[0]! : cat(outs, -1);
  }

  /** x W^T of the frozen weight alone: x [..., in] -> [..., out]. */
  private baseProduct(x: Tensor): Tensor {
    if (this.quantized !== null) return quantizedMatmul(x, this.quantized);
    const outs = this.parts.map((w) => matmul(x, transpose(w))); // [..., rows_i]
    return outs.length === 1 ? outs[0]! : cat(outs, -1);
  }

  /**
   * DoRA's ||W + scaling B A|| per output row, f32 [out], outside autograd (PEFT's get_weight_norm, detached), kept
   * until the weight or A and B change. Only for an unmerged DoRA adapter.
   */
  doraNorm(): Tensor {
    const lora = this.adapter;
    if (lora === null) throw new Error(`internal: ${this.name} has no adapter to take DoRA's norm of`);
    const key = [this.parts, this.quantized] as const;
    const versions = this.parts.map((p) => p.version);
    let w2 = this.doraKept.w2;
    if (w2 === null || w2.sources[0] !== key[0] || w2.sources[1] !== key[1] || w2.versions.some((v, i) => v !== versions[i])) {
      w2?.value.dispose('the weight it was computed from changed');
      this.doraKept.norm?.value.dispose('the weight it was computed from changed');
      this.doraKept.norm = null;
      w2 = { sources: [...key], versions, value: keep(rowSquares(this.parts, this.quantized)) };
      this.doraKept.w2 = w2;
    }
    const sources = [lora.A, lora.B];
    const kept = this.doraKept.norm;
    if (kept !== null && kept.sources[0] === lora.A && kept.sources[1] === lora.B && kept.versions[0] === lora.A.version && kept.versions[1] === lora.B.version) return kept.value;
    kept?.value.dispose('the adapter matrices it was computed from changed');
    const value = keep(doraWeightNorm(this.parts, this.quantized, w2.value, lora.A, lora.B, lora.scaling));
    this.doraKept.norm = { sources, versions: [lora.A.version, lora.B.version], value };
    return value;
  }

  /** Whether an inference forward of x adds the adapter's update with the fused decode products. */
  private fusedUpdateFits(x: Tensor): boolean {
    if (isGradEnabled() || (x.dtype !== 'f32' && x.dtype !== 'f16')) return false;
    const K = x.shape[x.rank - 1]!;
    return K > 0 && x.size / K <= FUSED_LINEAR_MAX_ROWS && fusedLinearPreferred();
  }

  /**
   * The adapter's A or B in `dtype`. Where the cast is not recorded for autograd (grad off, or the
   * matrix needs no gradient), it is kept and reused until the matrix's storage is written again.
   */
  private adapterMatrix(m: 'A' | 'B', dtype: FloatDType): Tensor {
    const source = this.adapter![m];
    if (source.dtype === dtype) return source;
    if (isGradEnabled() && source.requiresGrad) return cast(source, dtype); // in the graph: the gradient reaches the f32 leaf
    const kept = this.casts[m];
    if (kept !== null && kept.source === source && kept.version === source.version && kept.cast.dtype === dtype) return kept.cast;
    kept?.cast.dispose('the adapter matrix it was cast from changed');
    const fresh = { source, version: source.version, cast: keep(noGrad(() => cast(source, dtype))) };
    this.casts[m] = fresh;
    return fresh.cast;
  }

  private dropCasts(): void {
    this.onAdapterChange?.();
    this.casts.A?.cast.dispose('the adapter was replaced, merged or unmerged');
    this.casts.B?.cast.dispose('the adapter was replaced, merged or unmerged');
    this.casts = { A: null, B: null };
    this.doraKept.norm?.value.dispose('the adapter was replaced, merged or unmerged');
    this.doraKept.w2?.value.dispose('the adapter was replaced, merged or unmerged');
    this.doraKept = { w2: null, norm: null };
  }

  /** Disposes the weight parts, the bias and the adapter. */
  dispose(): void {
    for (const p of this.parts) p.dispose();
    this.bias?.dispose();
    this.bias = null;
    this.quantized?.dispose();
    this.quantized = null;
    this.lora?.A.dispose();
    this.lora?.B.dispose();
    this.lora?.magnitude?.dispose();
    this.lora = null;
    this.mergedScale?.dispose();
    this.mergedScale = null;
  }
}

/** A value computed from `sources` (at `versions` of their storage where given). */
interface KeptNorm {
  readonly sources: readonly unknown[];
  readonly versions: readonly number[];
  readonly value: Tensor;
}

/** A cast of an adapter matrix and the version of the matrix's storage it was made from. */
interface CachedCast {
  readonly source: Tensor;
  readonly version: number;
  readonly cast: Tensor;
}
