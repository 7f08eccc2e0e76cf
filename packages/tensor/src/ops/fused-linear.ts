// Decoding's fused matrix-vector products (kernels/matvec_fused.wgsl): projections sharing one input in
// one pass, the residual add in the product's epilogue, gate and up with SwiGLU, optionally the RMSNorm
// of the input before them, (concatenated products) biases and then unmerged LoRA adapters' updates.
// Inference only (no autograd); for a few rows of x (M <= 4) on adapters with a fixed subgroup size.
// Callers check fusedLinearFits and fall back to matmul, add and swiglu elsewhere.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { isGradEnabled } from '../grad-mode.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import type { Tensor } from '../tensor.js';
import { QuantizedWeight } from '../quant/weight.js';
import { fusedLinearCheckOutcome } from './fused-linear-check.js';
import { chunkOf, Epilogue, runFused, type FusedLora, type FusedNorm, type RunArgs } from './fused-linear-launch.js';
import { FUSED_QUANT_BINDINGS, runFusedQuantized } from './fused-linear-quant.js';
import { cat, reshape, slice } from './views.js';

export type { FusedAdapter, FusedLora, FusedNorm } from './fused-linear-launch.js';

/** A fused product's weight [N, K]: a tensor in x's dtype, or quantized (int8, NF4; all of a product's in one format). */
export type FusedWeight = Tensor | QuantizedWeight;

/** Whether quantized `weights` fit: one format, [N_i, K], and the device binds the kernel's storage buffers. */
function quantizedFits(x: Tensor, weights: readonly QuantizedWeight[], K: number): boolean {
  const format = weights[0]!.format;
  if (getRuntime().device.limits.maxStorageBuffersPerShaderStage < FUSED_QUANT_BINDINGS[format]) return false;
  if (x.isContiguous && x.offset % 4 !== 0) return false;
  return weights.every((w) => w.format === format && w.cols === K && w.rows > 0);
}

/** Most rows of x a fused product takes (decode-sized: a few sequences, one new token each). */
export const FUSED_LINEAR_MAX_ROWS = 4;

/**
 * Whether the fused products can run x [..., K] against `weights` (each [N_i, K]): an adapter with a
 * fixed subgroup size, f32 or f16 throughout, at most {@link FUSED_LINEAR_MAX_ROWS} rows of x, K and
 * the offsets in whole 16-byte chunks, contiguous weights, a norm weight that is not a view at an offset,
 * and no gradient to record. Quantized weights must share one format, and the device must bind their
 * kernel's storage buffers (int8 11, NF4 15).
 */
export function fusedLinearFits(x: Tensor, weights: readonly FusedWeight[], norm?: FusedNorm): boolean {
  const rt = getRuntime();
  if (v3SubgroupSize(rt.info) === 0 || (x.dtype !== 'f32' && x.dtype !== 'f16') || x.rank < 1) return false;
  const K = x.shape[x.rank - 1]!;
  const ce = chunkOf(x);
  const M = K === 0 ? 0 : x.size / K;
  if (M < 1 || M > FUSED_LINEAR_MAX_ROWS || K % ce !== 0 || weights.length < 1 || weights.length > 3) return false;
  if (isGradEnabled() && (x.requiresGrad || weights.some((w) => !(w instanceof QuantizedWeight) && w.requiresGrad) || norm?.weight.requiresGrad)) return false;
  const g = norm?.weight;
  // The kernels read the norm weight from the start of its buffer.
  if (g !== undefined && (g.dtype !== x.dtype || g.rank !== 1 || g.shape[0] !== K || !g.isContiguous || g.offset !== 0)) return false;
  if (weights.some((w) => w instanceof QuantizedWeight)) return weights.every((w) => w instanceof QuantizedWeight) && quantizedFits(x, weights as QuantizedWeight[], K);
  return (weights as Tensor[]).every((w) => w.dtype === x.dtype && w.rank === 2 && w.shape[1] === K && w.shape[0]! > 0 && w.isContiguous && w.offset % ce === 0);
}

let preferred: boolean | null = null;

/**
 * Whether decoding should use the fused products: by default on a GPU (each dispatch saved is launch and
 * host time) once they have passed their check on the device ({@link readyFusedLinear}, which `generate`
 * awaits), and not on a CPU adapter such as lavapipe, which pays for the work rather than for the
 * dispatches (there greedy decoding at LLaMA-7B width took about 1.5-2x as long per token with them).
 * {@link setFusedLinearPreferred} overrides it.
 */
export function fusedLinearPreferred(): boolean {
  if (preferred !== null) return preferred;
  const rt = getRuntime();
  return !rt.info.isFallbackAdapter && fusedLinearCheckOutcome(rt)?.ok === true;
}

/**
 * Makes decoding use the fused products (true) or the separate ops (false) on any adapter, or restores
 * the adapter's default (null). The products themselves run wherever {@link fusedLinearFits} holds.
 * @example setFusedLinearPreferred(true); // ... setFusedLinearPreferred(null);
 */
export function setFusedLinearPreferred(on: boolean | null): void {
  preferred = on;
}

function check(op: string, x: Tensor, weights: readonly FusedWeight[], norm?: FusedNorm): void {
  if (fusedLinearFits(x, weights, norm)) return;
  for (const w of weights) {
    if (w instanceof QuantizedWeight) {
      if (w.cols !== x.shape[x.rank - 1]) throw new ShapeError(`${op}: x is ${fmtShape(x.shape)}, a quantized weight is [${w.rows}, ${w.cols}]; weights are [N, K] with K = x's last dim`);
      continue;
    }
    if (w.dtype !== x.dtype) throw new DTypeError(`${op}: x is ${x.dtype}, a weight is ${w.dtype}; they must match`);
    if (w.rank !== 2 || w.shape[1] !== x.shape[x.rank - 1]) throw new ShapeError(`${op}: x is ${fmtShape(x.shape)}, a weight is ${fmtShape(w.shape)}; weights are [N, K] with K = x's last dim`);
  }
  throw new ValueError(
    `${op}: x ${x.dtype} ${fmtShape(x.shape)} with weights ${weights.map(describe).join(', ')} do not fit the fused kernel ` +
      `(needs subgroups, at most ${FUSED_LINEAR_MAX_ROWS} rows, K a multiple of ${chunkOf(x)}, contiguous weights, a norm weight [K] that starts its buffer (not a view at an offset), no gradient; ` +
      `quantized weights all of one format, on a device binding ${FUSED_QUANT_BINDINGS.nf4} storage buffers a stage for NF4, ${FUSED_QUANT_BINDINGS.int8} for int8); check fusedLinearFits first`,
  );
}

const describe = (w: FusedWeight) => (w instanceof QuantizedWeight ? `${w.format} [${w.rows}, ${w.cols}]` : fmtShape(w.shape));
const rowsOf = (w: FusedWeight) => (w instanceof QuantizedWeight ? w.rows : w.shape[0]!);

/** Runs a checked product on the dense or the quantized kernel. */
function run(op: string, a: Omit<RunArgs, 'weights'> & { weights: readonly FusedWeight[] }): Tensor {
  if (a.bias !== undefined && a.lora !== undefined && a.bias.storage(op) !== a.lora.b.storage(op)) a = { ...a, ...sharedBuffer(a.lora, a.bias) };
  if (a.weights[0] instanceof QuantizedWeight) return runFusedQuantized(op, { ...a, weights: a.weights as QuantizedWeight[] });
  return runFused(op, { ...a, weights: a.weights as Tensor[] });
}

/** The adapters' h and b fit x's rows and the weights: dtypes, shapes, ranks; throws naming `op` otherwise. */
function checkLora(op: string, x: Tensor, weights: readonly FusedWeight[], lora: FusedLora): void {
  const { h, b, adapters } = lora;
  if (h.dtype !== x.dtype || b.dtype !== x.dtype) throw new DTypeError(`${op}: x is ${x.dtype}, the adapters' h is ${h.dtype} and b ${b.dtype}; they must match`);
  if (adapters.length !== weights.length) throw new ValueError(`${op}: ${adapters.length} adapter entries for ${weights.length} weights; give one per weight (null where none)`);
  let R = 0;
  let B = 0;
  adapters.forEach((a, i) => {
    if (a === null) return;
    if (!Number.isInteger(a.rank) || a.rank < 1 || !Number.isFinite(a.scaling)) throw new ValueError(`${op}: adapter ${i} has rank ${a.rank} and scaling ${a.scaling}; the rank must be a positive integer, the scaling finite`);
    R += a.rank;
    B += a.rank * rowsOf(weights[i]!);
  });
  const M = x.size / x.shape[x.rank - 1]!;
  if (h.rank < 1 || h.shape[h.rank - 1] !== R || h.size !== M * R) {
    throw new ShapeError(`${op}: the adapters' h is ${fmtShape(h.shape)}; it must be [..., ${R}] (the ranks summed) with x's ${M} rows`);
  }
  if (b.size !== B || !b.isContiguous) throw new ShapeError(`${op}: the adapters' b is ${fmtShape(b.shape)}${b.isContiguous ? '' : ' (not contiguous)'}; it must hold the B_i [N_i, r_i] one after the other, ${B} elements`);
}

/** The bias fits the weights: x's dtype, [sum N_i] contiguous; throws naming `op` otherwise. */
function checkBias(op: string, x: Tensor, weights: readonly FusedWeight[], bias: Tensor): void {
  const N = weights.reduce((s, w) => s + rowsOf(w), 0);
  if (bias.dtype !== x.dtype) throw new DTypeError(`${op}: x is ${x.dtype}, the bias is ${bias.dtype}; they must match`);
  if (bias.size !== N || !bias.isContiguous) {
    throw new ShapeError(`${op}: the bias is ${fmtShape(bias.shape)}${bias.isContiguous ? '' : ' (not contiguous)'}; it must hold the weights' biases b_i [N_i] one after the other, ${N} elements`);
  }
  if (isGradEnabled() && bias.requiresGrad) throw new ValueError(`${op}: records no gradient; call it under noGrad()`);
}

/**
 * The kernels read the adapters' B and the bias through one binding: where they are in two buffers, both
 * copied into one (a dispatch; callers that keep them packed together, as decoding does, skip it).
 */
function sharedBuffer(lora: FusedLora, bias: Tensor): { lora: FusedLora; bias: Tensor } {
  const nb = lora.b.size;
  const packed = cat([reshape(lora.b, [nb]), reshape(bias, [bias.size])], 0);
  return { lora: { ...lora, b: slice(packed, 0, 0, nb) }, bias: slice(packed, 0, nb, nb + bias.size) };
}

/**
 * x W_i^T for up to three weights sharing the input x, in one pass over x, concatenated along the last
 * dim: x [..., K], weights [N_i, K] -> [..., sum N_i] (as cat of matmul(x, transpose(w_i)), e.g.
 * q, k and v; quantized weights as quantizedMatmul, dequantized as they are read). With `norm`, x is rmsNorm(x, norm.weight, norm.eps) first, rounded as rmsNorm rounds.
 * With `lora`, each adapted weight's product gains its adapter's update (see {@link FusedLora}). With `bias`
 * (the weights' biases b_i [N_i] concatenated, [sum N_i]; zeros for a weight without one), each product
 * gains its bias before the update, the f32 product and b_i rounded once as linear(x, w_i, b_i) rounds (F.linear's
 * addmm): PEFT's (x W^T + b) + update, as Linear computes it (Qwen2's q, k and v). A bias in the buffer of lora.b (views of one packed tensor) saves a copy into one.
 * Requires {@link fusedLinearFits}.
 * @example const qkv = noGrad(() => fusedLinear(x, [wq, wk, wv], { weight: inputNorm, eps: 1e-6 })); // [B, 1, Nq + 2 Nkv]
 */
export function fusedLinear(x: Tensor, weights: readonly FusedWeight[], norm?: FusedNorm, lora?: FusedLora, bias?: Tensor): Tensor {
  check('fusedLinear', x, weights, norm);
  if (lora !== undefined) checkLora('fusedLinear', x, weights, lora);
  if (bias !== undefined) checkBias('fusedLinear', x, weights, bias);
  return run('fusedLinear', { epi: Epilogue.Cat, x, weights, norm, lora, bias });
}

/**
 * residual + x W^T in one dispatch (torch.addmm(residual, x, W.T)): the residual add of a decoder
 * layer's o_proj and down_proj. x [..., K], w [N, K], residual [..., N]. The product is rounded to the
 * dtype before the add, as matmul then add round; with `lora`, W's adapter's update is added to it first.
 * Requires {@link fusedLinearFits}.
 * @example x = noGrad(() => fusedLinearAdd(x, attnOut, wo)); // [B, 1, C]
 */
export function fusedLinearAdd(residual: Tensor, x: Tensor, w: FusedWeight, lora?: FusedLora): Tensor {
  check('fusedLinearAdd', x, [w]);
  checkResidual('fusedLinearAdd', residual, x, rowsOf(w));
  if (lora !== undefined) checkLora('fusedLinearAdd', x, [w], lora);
  return run('fusedLinearAdd', { epi: Epilogue.Add, x, weights: [w], residual, lora });
}

/**
 * silu(x Wg^T) * (x Wu^T) in one pass over x: LLaMA's gate and up projections with SwiGLU.
 * x [..., K], gate and up [N, K] -> [..., N]; each product is rounded to the dtype first, as matmul
 * then swiglu round, with its adapter's update added where `lora` gives one. With `norm`, x is
 * rmsNorm(x, norm.weight, norm.eps) first. Requires {@link fusedLinearFits}.
 * @example const inner = noGrad(() => fusedLinearSwiglu(h, wGate, wUp)); // [B, 1, I]
 */
export function fusedLinearSwiglu(x: Tensor, gate: FusedWeight, up: FusedWeight, norm?: FusedNorm, lora?: FusedLora): Tensor {
  check('fusedLinearSwiglu', x, [gate, up], norm);
  if (rowsOf(gate) !== rowsOf(up)) throw new ShapeError(`fusedLinearSwiglu: gate is ${describe(gate)}, up is ${describe(up)}; they must be equal`);
  if (lora !== undefined) checkLora('fusedLinearSwiglu', x, [gate, up], lora);
  return run('fusedLinearSwiglu', { epi: Epilogue.Swiglu, x, weights: [gate, up], norm, lora });
}

/**
 * Whether {@link fusedLoraAdd} can run: an adapter with a fixed subgroup size, f32 or f16, h [..., r]
 * with at most {@link FUSED_LINEAR_MAX_ROWS} rows, and no gradient to record.
 */
export function fusedLoraAddFits(y: Tensor, h: Tensor, b: Tensor): boolean {
  if (v3SubgroupSize(getRuntime().info) === 0 || (h.dtype !== 'f32' && h.dtype !== 'f16') || h.rank < 1 || y.dtype !== h.dtype || b.dtype !== h.dtype) return false;
  const r = h.shape[h.rank - 1]!;
  const M = r === 0 ? 0 : h.size / r;
  if (M < 1 || M > FUSED_LINEAR_MAX_ROWS || !b.isContiguous || b.rank !== 2 || b.shape[1] !== r || y.shape[y.rank - 1] !== b.shape[0]) return false;
  return !(isGradEnabled() && (y.requiresGrad || h.requiresGrad || b.requiresGrad));
}

/**
 * y + T(T(h B^T) * scaling) in one dispatch: a LoRA adapter's up-projection, scaling and add to the base
 * product where the base cannot join a fused product (a quantized weight). y [..., N], h = x A^T
 * [..., r], b = B [N, r]; rounded as matmul, mul and add round. Requires {@link fusedLoraAddFits}.
 * @example y = noGrad(() => fusedLoraAdd(quantizedMatmul(x, wq), matmul(x, transpose(A)), B, 2)); // [B, 1, N]
 */
export function fusedLoraAdd(y: Tensor, h: Tensor, b: Tensor, scaling: number): Tensor {
  if (!fusedLoraAddFits(y, h, b)) {
    throw new ValueError(
      `fusedLoraAdd: y ${y.dtype} ${fmtShape(y.shape)}, h ${h.dtype} ${fmtShape(h.shape)} and B ${b.dtype} ${fmtShape(b.shape)} do not fit the fused kernel ` +
        `(needs subgroups, one dtype (f32 or f16), at most ${FUSED_LINEAR_MAX_ROWS} rows, B [N, r] contiguous with h [..., r] and y [..., N], no gradient); check fusedLoraAddFits first`,
    );
  }
  const N = b.shape[0]!;
  checkResidual('fusedLoraAdd', y, h, N);
  const lora = { h, b, adapters: [{ rank: b.shape[1]!, scaling }] };
  if (!Number.isFinite(scaling)) throw new ValueError(`fusedLoraAdd: scaling is ${scaling}; it must be finite`);
  return runFused('fusedLoraAdd', { epi: Epilogue.Add, x: h, weights: [], residual: y, lora, loraOnly: N });
}

function checkResidual(op: string, residual: Tensor, x: Tensor, N: number): void {
  const shape = [...x.shape.slice(0, -1), N];
  if (residual.dtype !== x.dtype) throw new DTypeError(`${op}: residual is ${residual.dtype}, x is ${x.dtype}; they must match`);
  if (residual.shape.length !== shape.length || residual.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(`${op}: residual is ${fmtShape(residual.shape)}, x W^T is ${fmtShape(shape)}; they must be equal`);
  }
  if (isGradEnabled() && residual.requiresGrad) throw new ValueError(`${op}: records no gradient; call it under noGrad()`);
}
