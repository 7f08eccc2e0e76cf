// A bias-free projection y = x W^T with W stored as Hugging Face does ([out, in]) and read
// transposed in place; W may be split along its rows (outputs) into several buffers when it
// exceeds the adapter's binding limit, or quantized (int8, NF4) and dequantized inside the matmul.
// An optional LoRA adapter adds B(A(dropout(x))) * alpha / r.

import { add, cast, cat, dropout, matmul, mul, quantizedMatmul, transpose, type QuantizedWeight, type Tensor } from '@huatuo/tensor';

/** A LoRA adapter of one projection: A [r, in] and B [out, r], f32 leaves that train. */
export interface LoraWeights {
  readonly A: Tensor;
  readonly B: Tensor;
  /** alpha / r. */
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
  lora: LoraWeights | null = null;
  /** Whether the adapter has been added into `parts` (then forward skips it). */
  merged = false;

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

  /** The weight [out, in] when y = x W^T is the whole projection (one part, not quantized, no unmerged adapter), else null. */
  get plainWeight(): Tensor | null {
    return this.quantized === null && this.parts.length === 1 && (this.lora === null || this.merged) ? this.parts[0]! : null;
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
    if (lora !== null && !this.merged) {
      const A = lora.A.dtype === x.dtype ? lora.A : cast(lora.A, x.dtype);
      const B = lora.B.dtype === x.dtype ? lora.B : cast(lora.B, x.dtype);
      const xin = dropoutSeed !== undefined && lora.dropout > 0 ? dropout(x, lora.dropout, dropoutSeed) : x;
      const h = matmul(xin, transpose(A)); // [..., r]
      y = add(y, mul(matmul(h, transpose(B)), lora.scaling)); // [..., out]
    }
    return y;
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
