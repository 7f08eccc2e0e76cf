// Decoding's fused matrix-vector products (kernels/matvec_fused.wgsl): projections sharing one input in
// one pass, the residual add in the product's epilogue, gate and up with SwiGLU, optionally the RMSNorm
// of the input before them. Inference only (no
// autograd); for a few rows of x (M <= 4) on adapters with a fixed subgroup size. Callers check
// fusedLinearFits and fall back to matmul, add and swiglu elsewhere.
import { getRuntime } from '../backend/context.js';
import type { CompiledKernel, Runtime } from '../backend/runtime.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { isGradEnabled } from '../grad-mode.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import { empty, type Tensor } from '../tensor.js';
import { choiceFor } from '../tuning.js';
import { contiguousData } from './launch.js';
import { fusedLinearCheckOutcome } from './fused-linear-check.js';

/** Most rows of x a fused product takes (decode-sized: a few sequences, one new token each). */
export const FUSED_LINEAR_MAX_ROWS = 4;
/** 16-byte loads per row per pass: matvec.v3's (sums in its order at this U). */
const UNROLL = 4;
/**
 * Outputs per subgroup: matvec.v3's 2 on a GPU; more on a CPU adapter (lavapipe), which pays per
 * workgroup, and where each workgroup's RMS of x (the norm) costs as much as its few rows.
 */
const rowsPerSubgroup = (rt: Runtime) => (rt.info.isFallbackAdapter ? 8 : 2);

/** The kernel's epilogue: concatenated products, residual add, SwiGLU of two products. */
const Epilogue = { Cat: 0, Add: 1, Swiglu: 2 } as const;
type Epilogue = (typeof Epilogue)[keyof typeof Epilogue];

/** LLaMA's RMSNorm of the input before the product: x / sqrt(mean(x^2) + eps) * weight ([K]). */
export interface FusedNorm {
  readonly weight: Tensor;
  readonly eps: number;
}

const kernels = new WeakMap<Runtime, Map<string, CompiledKernel>>();

/** The kernel's element read and normalized chunk, for 16-byte chunks of 4 f32 or of 8 f16 (4 packed pairs). */
const F32_NORM = { X_ELEM: '  return x[i / 4u][i % 4u];', NORM_CHUNK: '  return gc * (xc * r);' };
const F16_NORM = {
  X_ELEM: '  return unpack2x16float(x[i / 8u][(i % 8u) / 2u])[i % 2u];',
  NORM_CHUNK: [
    '  var out: vec4<u32>;',
    '  for (var j = 0u; j < 4u; j++) {',
    '    let h = vec2<f32>(vec2<f16>(unpack2x16float(xc[j]) * r));',
    '    out[j] = pack2x16float(vec2<f32>(vec2<f16>(unpack2x16float(gc[j]) * h)));',
    '  }',
    '  return out;',
  ].join('\n'),
};

/** Elements in a 16-byte chunk. */
const chunkOf = (t: Tensor) => (t.dtype === 'f16' ? 8 : 4);

/**
 * Whether the fused products can run x [..., K] against `weights` (each [N_i, K]): an adapter with a
 * fixed subgroup size, f32 or f16 throughout, at most {@link FUSED_LINEAR_MAX_ROWS} rows of x, K and
 * the offsets in whole 16-byte chunks, contiguous weights, and no gradient to record.
 */
export function fusedLinearFits(x: Tensor, weights: readonly Tensor[], norm?: FusedNorm): boolean {
  const rt = getRuntime();
  if (v3SubgroupSize(rt.info) === 0 || (x.dtype !== 'f32' && x.dtype !== 'f16') || x.rank < 1) return false;
  const K = x.shape[x.rank - 1]!;
  const ce = chunkOf(x);
  const M = K === 0 ? 0 : x.size / K;
  if (M < 1 || M > FUSED_LINEAR_MAX_ROWS || K % ce !== 0 || weights.length < 1 || weights.length > 3) return false;
  if (isGradEnabled() && (x.requiresGrad || weights.some((w) => w.requiresGrad) || norm?.weight.requiresGrad)) return false;
  const g = norm?.weight;
  if (g !== undefined && (g.dtype !== x.dtype || g.rank !== 1 || g.shape[0] !== K || !g.isContiguous || g.offset % ce !== 0)) return false;
  return weights.every((w) => w.dtype === x.dtype && w.rank === 2 && w.shape[1] === K && w.shape[0]! > 0 && w.isContiguous && w.offset % ce === 0);
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

function check(op: string, x: Tensor, weights: readonly Tensor[], norm?: FusedNorm): void {
  if (fusedLinearFits(x, weights, norm)) return;
  for (const w of weights) {
    if (w.dtype !== x.dtype) throw new DTypeError(`${op}: x is ${x.dtype}, a weight is ${w.dtype}; they must match`);
    if (w.rank !== 2 || w.shape[1] !== x.shape[x.rank - 1]) throw new ShapeError(`${op}: x is ${fmtShape(x.shape)}, a weight is ${fmtShape(w.shape)}; weights are [N, K] with K = x's last dim`);
  }
  throw new ValueError(
    `${op}: x ${x.dtype} ${fmtShape(x.shape)} with weights ${weights.map((w) => fmtShape(w.shape)).join(', ')} do not fit the fused kernel ` +
      `(needs subgroups, at most ${FUSED_LINEAR_MAX_ROWS} rows, K a multiple of ${chunkOf(x)}, contiguous weights and norm weight [K], no gradient); check fusedLinearFits first`,
  );
}

function run(op: string, epi: Epilogue, x: Tensor, weights: readonly Tensor[], residual: Tensor | null, norm?: FusedNorm): Tensor {
  const rt = getRuntime();
  const K = x.shape[x.rank - 1]!;
  const M = x.size / K;
  const ce = chunkOf(x);
  const N = epi === Epilogue.Cat ? weights.reduce((s, w) => s + w.shape[0]!, 0) : weights[0]!.shape[0]!;
  const out = empty([...x.shape.slice(0, -1), N], x.dtype);
  const xc = contiguousData(op, x);
  const r = residual === null ? null : contiguousData(op, residual);
  const decode = choiceFor(rt).decode;
  const G = decode?.kernel === 'matvec' && decode.wide && decode.groups ? decode.groups : 1;
  const sg = v3SubgroupSize(rt.info);
  // The epilogue and the norm are uniforms: one pipeline per dtype and row count.
  const ROWS = rowsPerSubgroup(rt);
  const key = `${x.dtype}|${M}|${G}|${ROWS}`;
  let byKey = kernels.get(rt);
  if (!byKey) kernels.set(rt, (byKey = new Map()));
  let kernel = byKey.get(key);
  if (!kernel) {
    const f16 = x.dtype === 'f16';
    const pair = (c: string) => `dot(unpack2x16float(xc.${c}), unpack2x16float(wc.${c}))`;
    kernel = compileKernel(rt, 'matvec_fused', {
      T: x.dtype,
      CH: f16 ? 'vec4<u32>' : 'vec4<f32>',
      CHUNK_DOT: f16 ? `  return ${['x', 'y', 'z', 'w'].map(pair).join(' + ')};` : '  return dot(xc, wc);',
      SG: String(sg),
      ROWS: String(ROWS),
      U: String(UNROLL),
      G: String(G),
      MR: String(M),
      CE: String(ce),
      ...(f16 ? F16_NORM : F32_NORM),
    });
    byKey.set(key, kernel);
  }
  const [w0, w1, w2] = [weights[0]!, weights[1] ?? weights[0]!, weights[2] ?? weights[0]!];
  const n1 = epi === Epilogue.Cat ? weights[0]!.shape[0]! : N;
  const n2 = epi === Epilogue.Cat && weights.length > 1 ? n1 + weights[1]!.shape[0]! : N;
  const params = packParams('matvec_fused', {
    N,
    K: K / ce,
    n1,
    n2,
    x_offset: xc.offset / ce,
    x_row: K / ce,
    w0_offset: w0.offset / ce,
    w1_offset: w1.offset / ce,
    w2_offset: w2.offset / ce,
    r_offset: r?.offset ?? 0,
    r_row: N,
    eps: norm?.eps ?? 0,
    epi,
    norm: norm === undefined ? 0 : 1,
  });
  rt.dispatch({
    kernel,
    params,
    buffers: [xc.buffer(op), w0.buffer(op), w1.buffer(op), w2.buffer(op), (r ?? xc).buffer(op), (norm?.weight ?? xc).buffer(op), out.buffer(op)],
    workgroups: grid1d(N, ROWS * G),
    label: op,
  });
  return out;
}

/**
 * x W_i^T for up to three weights sharing the input x, in one pass over x, concatenated along the last
 * dim: x [..., K], weights [N_i, K] -> [..., sum N_i] (as cat of matmul(x, transpose(w_i)), e.g.
 * q, k and v). With `norm`, x is rmsNorm(x, norm.weight, norm.eps) first, rounded as rmsNorm rounds.
 * Requires {@link fusedLinearFits}.
 * @example const qkv = noGrad(() => fusedLinear(x, [wq, wk, wv], { weight: inputNorm, eps: 1e-6 })); // [B, 1, Nq + 2 Nkv]
 */
export function fusedLinear(x: Tensor, weights: readonly Tensor[], norm?: FusedNorm): Tensor {
  check('fusedLinear', x, weights, norm);
  return run('fusedLinear', Epilogue.Cat, x, weights, null, norm);
}

/**
 * residual + x W^T in one dispatch (torch.addmm(residual, x, W.T)): the residual add of a decoder
 * layer's o_proj and down_proj. x [..., K], w [N, K], residual [..., N]. The product is rounded to the
 * dtype before the add, as matmul then add round. Requires {@link fusedLinearFits}.
 * @example x = noGrad(() => fusedLinearAdd(x, attnOut, wo)); // [B, 1, C]
 */
export function fusedLinearAdd(residual: Tensor, x: Tensor, w: Tensor): Tensor {
  check('fusedLinearAdd', x, [w]);
  const shape = [...x.shape.slice(0, -1), w.shape[0]!];
  if (residual.dtype !== x.dtype) throw new DTypeError(`fusedLinearAdd: residual is ${residual.dtype}, x is ${x.dtype}; they must match`);
  if (residual.shape.length !== shape.length || residual.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(`fusedLinearAdd: residual is ${fmtShape(residual.shape)}, x W^T is ${fmtShape(shape)}; they must be equal`);
  }
  if (isGradEnabled() && residual.requiresGrad) throw new ValueError('fusedLinearAdd: records no gradient; call it under noGrad()');
  return run('fusedLinearAdd', Epilogue.Add, x, [w], residual);
}

/**
 * silu(x Wg^T) * (x Wu^T) in one pass over x: LLaMA's gate and up projections with SwiGLU.
 * x [..., K], gate and up [N, K] -> [..., N]; each product is rounded to the dtype first, as matmul
 * then swiglu round. With `norm`, x is rmsNorm(x, norm.weight, norm.eps) first.
 * Requires {@link fusedLinearFits}.
 * @example const inner = noGrad(() => fusedLinearSwiglu(h, wGate, wUp)); // [B, 1, I]
 */
export function fusedLinearSwiglu(x: Tensor, gate: Tensor, up: Tensor, norm?: FusedNorm): Tensor {
  check('fusedLinearSwiglu', x, [gate, up], norm);
  if (gate.shape[0] !== up.shape[0]) throw new ShapeError(`fusedLinearSwiglu: gate is ${fmtShape(gate.shape)}, up is ${fmtShape(up.shape)}; they must be equal`);
  return run('fusedLinearSwiglu', Epilogue.Swiglu, x, [gate, up], null, norm);
}
