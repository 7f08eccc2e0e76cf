// A bias-free projection y = x W^T with W stored as Hugging Face does ([out, in]) and read
// transposed in place; W may be split along its rows (outputs) into several buffers when it
// exceeds the adapter's binding limit, or quantized (int8, NF4) and dequantized inside the matmul.
// An optional LoRA adapter adds B(A(dropout(x))) * scaling (alpha / r, or alpha / sqrt(r) with rsLoRA); at inference its matrices' casts to the
// activations' dtype are kept while the matrices are unchanged (their storage version); decoding adds
// the update in one fused dispatch after the down-projection h = x A^T where the fused products run.

import {
  add, cast, cat, dropout, FUSED_LINEAR_MAX_ROWS, fusedLinear, fusedLinearFits, fusedLinearPreferred, fusedLoraAdd, fusedLoraAddFits, isGradEnabled, keep, matmul, mul, noGrad,
  quantizedMatmul, transpose, type FloatDType, type FusedWeight, type QuantizedWeight, type Tensor,
} from '@huatuo/tensor';

/** A LoRA adapter of one projection: A [r, in] and B [out, r], f32 leaves that train. */
export interface LoraWeights {
  readonly A: Tensor;
  readonly B: Tensor;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's use_rslora); per module with rank_pattern / alpha_pattern. */
  readonly scaling: number;
  /** Dropout probability on the adapter's input while training. */
  readonly dropout: number;
}

/** A projection of a decoder layer or the lm_head. */
export class Linear {
  /** Weight rows, in order: one part [out, in], or several [rows_i, in] that concatenate to it. Frozen. Empty when quantized. */
  parts: Tensor[];
  /** The frozen weight [out, in] quantized (then `parts` is empty), or null. */
  quantized: QuantizedWeight | null;
  private adapter: LoraWeights | null = null;
  private isMerged = false;
  /** A and B cast to the activations' dtype, outside autograd, with the storage versions they were cast at. */
  private casts: { A: CachedCast | null; B: CachedCast | null } = { A: null, B: null };
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

  /** The weight [out, in] when the base product is y = x W^T with W in one part or quantized, else null; an unmerged adapter comes on top. */
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
   * y = x W^T (+ the adapter's update); x [..., in] -> [..., out]. `dropoutSeed` enables the
   * adapter's dropout (training).
   */
  forward(x: Tensor, dropoutSeed?: number): Tensor {
    let y: Tensor;
    if (this.quantized !== null) {
      y = quantizedMatmul(x, this.quantized); // [..., out]
    } else {
      const outs = this.parts.map((w) => matmul(x, transpose(w))); // [..., rows_i]
      y = outs.length === 1 ? outs[0]! : cat(outs, -1); // [..., out]
    }
    const lora = this.lora;
    if (lora !== null && !this.merged && dropoutSeed === undefined && this.fusedUpdateFits(x)) {
      // Decoding: h = x A^T, then y + T(T(h B^T) * scaling) in one dispatch.
      const { A, B, scaling } = this.inferenceAdapter(x.dtype as FloatDType)!;
      const h = fusedLinearFits(x, [A]) ? fusedLinear(x, [A]) : matmul(x, transpose(A)); // [..., r]
      if (fusedLoraAddFits(y, h, B)) return fusedLoraAdd(y, h, B, scaling); // [..., out]
      return add(y, mul(matmul(h, transpose(B)), scaling));
    }
    if (lora !== null && !this.merged) {
      const A = this.adapterMatrix('A', x.dtype as FloatDType);
      const B = this.adapterMatrix('B', x.dtype as FloatDType);
      const xin = dropoutSeed !== undefined && lora.dropout > 0 ? dropout(x, lora.dropout, dropoutSeed) : x;
      const h = matmul(xin, transpose(A)); // [..., r]
      y = add(y, mul(matmul(h, transpose(B)), lora.scaling)); // [..., out]
    }
    return y;
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
  }

  /** Disposes the weight parts and the adapter. */
  dispose(): void {
    for (const p of this.parts) p.dispose();
    this.quantized?.dispose();
    this.quantized = null;
    this.lora?.A.dispose();
    this.lora?.B.dispose();
    this.lora = null;
  }
}

/** A cast of an adapter matrix and the version of the matrix's storage it was made from. */
interface CachedCast {
  readonly source: Tensor;
  readonly version: number;
  readonly cast: Tensor;
}
