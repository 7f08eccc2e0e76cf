// The projections of one fused decode product (q/k/v, gate/up, or one) with their unmerged LoRA adapters
// and biases: the adapters' down-projections h = norm(x) A_i^T in one pass, their B matrices and the biases
// in one buffer, so that the product adds each update and bias in its epilogue (two dispatches for any
// subset of adapted projections).

import { cat, fusedLinear, fusedLinearFits, keep, noGrad, reshape, slice, type FloatDType, type FusedLora, type FusedNorm, type FusedWeight, type Tensor } from '@huatuo/tensor';
import type { Linear } from './linear.js';

/** Base weights of a fused product and, where any projection has an unmerged adapter or a bias, the adapters' operands and the biases [sum N_i]. */
export interface FusedGroup {
  readonly weights: FusedWeight[];
  readonly lora?: FusedLora;
  readonly bias?: Tensor;
}

/** B matrices of several adapters concatenated flat, kept while the matrices (their identity and storage version) are unchanged. */
export class AdapterPacks {
  private readonly packs = new Map<string, { sources: Tensor[]; versions: number[]; packed: Tensor }>();

  /** The matrices `bs` one after the other (flat), packed again when one of them changed. */
  pack(key: string, bs: Tensor[]): Tensor {
    const kept = this.packs.get(key);
    if (kept !== undefined && kept.sources.length === bs.length && kept.sources.every((s, i) => s === bs[i] && kept.versions[i] === s.version)) return kept.packed;
    kept?.packed.dispose('the adapter matrices it was packed from changed');
    const packed = keep(noGrad(() => cat(bs.map((b) => reshape(b, [b.size])), 0))); // [sum N_i r_i]
    this.packs.set(key, { sources: bs, versions: bs.map((b) => b.version), packed });
    return packed;
  }

  /** Frees the packed matrices (an adapter changed, or the layer is disposed). */
  dispose(): void {
    for (const { packed } of this.packs.values()) packed.dispose('an adapter changed or the layer was disposed');
    this.packs.clear();
  }
}

/**
 * The operands of a fused product of `linears` on x (inference: grad off, a few rows), or null where the
 * product does not fit (a split weight, quantized weights the device cannot bind, an odd shape, a bias where
 * `biased` is false, biases on some projections only). Adapted projections cost one more dispatch here:
 * h = norm(x) A_i^T of all of them in one pass. Biases (`biased`: the concatenated product, Qwen2's q, k and v)
 * are packed after the adapters' B in one buffer, which the kernels read through one binding.
 */
export function fusedGroup(x: Tensor, linears: readonly Linear[], norm: FusedNorm | undefined, packs: AdapterPacks, key: string, biased = false): FusedGroup | null {
  // DoRA rescales each output row by m / ||W + scaling B A||, which the fused epilogue does not do: such a
  // projection falls back to its separate products (Linear.forward).
  if (linears.some((l) => l.isDora && !l.merged)) return null;
  const weights = linears.map((l) => l.baseWeight);
  if (weights.some((w) => w === null) || !fusedLinearFits(x, weights as FusedWeight[], norm)) return null;
  const biases = linears.map((l) => l.bias).filter((b) => b !== null);
  if (biases.length > 0 && (!biased || biases.length !== linears.length || biases.some((b) => b.dtype !== x.dtype || !b.isContiguous))) return null;
  const adapters = linears.map((l) => l.inferenceAdapter(x.dtype as FloatDType));
  const adapted = adapters.filter((a) => a !== null);
  if (adapted.length === 0) {
    if (biases.length === 0) return { weights: weights as FusedWeight[] };
    return { weights: weights as FusedWeight[], bias: biases.length === 1 ? biases[0]! : packs.pack(key, biases) };
  }
  const As = adapted.map((a) => a.A);
  if (!fusedLinearFits(x, As, norm) || adapted.some((a) => !a.B.isContiguous)) return null;
  const h = fusedLinear(x, As, norm); // [..., sum r_i]
  const lora = { h, adapters: adapters.map((a) => (a === null ? null : { rank: a.A.shape[0]!, scaling: a.scaling })) };
  if (biases.length === 0) return { weights: weights as FusedWeight[], lora: { ...lora, b: adapted.length === 1 ? adapted[0]!.B : packs.pack(key, adapted.map((a) => a.B)) } };
  const packed = packs.pack(key, [...adapted.map((a) => a.B), ...biases]); // [sum N_i r_i + sum N_i]
  const nb = adapted.reduce((s, a) => s + a.B.size, 0);
  return { weights: weights as FusedWeight[], lora: { ...lora, b: slice(packed, 0, 0, nb) }, bias: slice(packed, 0, nb, packed.size) };
}
