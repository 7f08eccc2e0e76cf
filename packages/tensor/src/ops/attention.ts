// Causal scaled-dot-product attention with grouped-query heads and an optional sliding window, flash style: the forward keeps only
// the output and a per-row logsumexp, the backward recomputes scores tile by tile (no T x S buffer).
// On GPUs, short sequences run composed of matmuls and a softmax instead (attention-composed.ts).
// Kernels: v1 (one query or key row per thread, K/V tiles in workgroup memory; any adapter, any D) and
// v2 (one subgroup per workgroup, rows shared through subgroupBroadcast; layouts in kernelgen/attention.ts).
// v2 runs where it can unless a variant is forced (tests, benchmarks).
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams, paramWord } from '../kernels.js';
import { v1Defines } from '../kernelgen/attention.js';
import { empty, type Tensor } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, contiguousData } from './launch.js';
import { composedAttention, type AttentionGeometry } from './attention-composed.js';
import { composedAttentionFor, v2Kernel } from './attention-choice.js';

export { attentionKernelFor, composedAttentionFor, setAttentionKernel, type AttentionKernel } from './attention-choice.js';

/** Options of {@link attention}. */
export interface AttentionOptions {
  /** Multiplier of q . k (default 1 / sqrt(D)). */
  scale?: number;
  /**
   * Causal mask aligned bottom-right, as with a KV cache (default true): query i (0-based among the
   * T queries) sees keys j <= i + (S - T).
   */
  causal?: boolean;
  /**
   * Sliding window (Mistral's `sliding_window`) of a causal call: query i also sees only the keys
   * j > i + (S - T) - window, i.e. its last `window` keys (itself included), as HF's sliding-window
   * mask. null or 0 (default): no window.
   */
  window?: number | null;
  /** [B, S] u32, i32 or f32: nonzero marks a real key, 0 a padding key that no query sees. */
  keyPaddingMask?: Tensor | null;
}

const OP = 'attention';
/** Threads (query or key rows) per workgroup and the size in vec4 of each workgroup-memory tile, as in the kernels. */
const ROWS = 16;
const TILE_VEC4 = 512;
const MAX_TILE_ROWS = 64;
/** The largest head dim the kernels take. */
export const MAX_D = 256;
/** Keys per split of the T == 1 decode kernel (at least; more when S is long). */
const MIN_SPLIT = 16;
const MAX_SPLITS = 128;

/** The decode kernel's splits of S keys: n splits of len keys (the last may be shorter). */
function decodeSplits(S: number): { n: number; len: number } {
  const len = Math.max(MIN_SPLIT, Math.ceil(S / MAX_SPLITS));
  return { n: Math.max(1, Math.ceil(S / len)), len };
}

/** The uniform words of the decode kernels that follow the key count: S, then kv_offset = S - 1; and the splits. */
const DECODE_LENGTH_WORDS = [paramWord('attention', 'S'), paramWord('attention', 'kv_offset')];
const SPLIT_WORDS = [paramWord('attention', 'n_split'), paramWord('attention', 'split_len')] as const;

/** The sizes, scale and mask kind of one call (shared with composed attention). */
type Geometry = AttentionGeometry;

/** The operands' shapes as the errors name them (built only for an error). */
function shapesOf(q: Tensor, k: Tensor, v: Tensor): string {
  return `q is ${fmtShape(q.shape)}, k is ${fmtShape(k.shape)}, v is ${fmtShape(v.shape)}`;
}

function check(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null): void {
  q.storage('attention (q)');
  k.storage('attention (k)');
  v.storage('attention (v)');
  mask?.storage('attention (keyPaddingMask)');
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
    throw new ShapeError(`${OP}: ${shapesOf(q, k, v)}; expected q [B, Hq, T, D] and k, v [B, Hkv, S, D]`);
  }
  checkFloat(OP, q, k, v);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype) {
    throw new DTypeError(`${OP}: q is ${q.dtype}, k is ${k.dtype}, v is ${v.dtype}; cast them to one float dtype`);
  }
  const [B, Hq, , D] = q.shape as [number, number, number, number];
  const [Bk, Hkv, S, Dk] = k.shape as [number, number, number, number];
  if (v.shape.some((n, i) => n !== k.shape[i])) throw new ShapeError(`${OP}: ${shapesOf(q, k, v)}; k and v must have the same shape`);
  if (Bk !== B) throw new ShapeError(`${OP}: ${shapesOf(q, k, v)}; batch sizes differ (${B} vs ${Bk})`);
  if (Dk !== D) throw new ShapeError(`${OP}: ${shapesOf(q, k, v)}; head dims differ (${D} vs ${Dk})`);
  if (Hkv === 0 || Hq % Hkv !== 0) {
    throw new ShapeError(`${OP}: ${shapesOf(q, k, v)}; query heads (${Hq}) must be a multiple of key/value heads (${Hkv})`);
  }
  if (D > MAX_D) throw new ShapeError(`${OP}: ${shapesOf(q, k, v)}; head dim ${D} is over the supported ${MAX_D}`);
  if (mask) {
    if (mask.dtype === 'f16') {
      throw new DTypeError(`${OP}: keyPaddingMask is f16 ${fmtShape(mask.shape)}; pass it as u32, i32 or f32`);
    }
    if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== S) {
      throw new ShapeError(`${OP}: keyPaddingMask is ${fmtShape(mask.shape)}, ${shapesOf(q, k, v)}; expected [B, S] = [${B}, ${S}]`);
    }
  }
}

/**
 * Elements between kv heads when the decode kernels can read k and v where they lie, as the filled
 * prefix of a KV cache: both views alike from offset 0, each head's [S, D] rows contiguous, heads evenly
 * apart (a batch row Hkv heads on), vec4-aligned where the kernels read vec4s; null otherwise.
 */
function kvHeadStride(g: Geometry, k: Tensor, v: Tensor): number | null {
  const [sb, sh, ss, sd] = k.strides as [number, number, number, number];
  if (k.offset !== 0 || v.offset !== 0 || k.strides.some((x, i) => x !== v.strides[i])) return null;
  if ((g.D > 1 && sd !== 1) || (g.S > 1 && ss !== g.D)) return null;
  // One head in one row: any stride reads it; the view's own keeps the uniform the same as the cache fills.
  const head = g.Hkv > 1 || g.B === 1 ? sh : sb;
  if (g.B > 1 && sb !== g.Hkv * head) return null;
  return g.D % 4 === 0 && head % 4 !== 0 ? null : head;
}

/** The uniform block shared by the attention kernels; k and v heads `kvStride` elements apart (decode only). */
function params(g: Geometry, mask: Tensor | null, split = { n: 0, len: 0 }, kvStride = g.S * g.D): Uint32Array {
  const D4 = Math.ceil(g.D / 4);
  const tileRows = Math.max(1, Math.min(MAX_TILE_ROWS, Math.floor(TILE_VEC4 / Math.max(D4, 1))));
  const maskBits = mask?.dtype === 'f32' ? 0x7fffffff : 0xffffffff; // f32: -0 is zero too
  return packParams('attention', {
    B: g.B,
    Hq: g.Hq,
    Hkv: g.Hkv,
    T: g.T,
    S: g.S,
    D: g.D,
    D4,
    BK: tileRows,
    causal: g.causal ? 1 : 0,
    has_mask: mask ? 1 : 0,
    mask_bits: maskBits,
    mask_offset: mask?.offset ?? 0,
    scale: g.scale,
    kv_offset: g.S - g.T,
    n_split: split.n,
    split_len: split.len,
    kv_stride: kvStride,
    window: g.window,
  });
}

/**
 * The forward kernels: the output [B, Hq, T, D] and the per-row logsumexp [B, Hq, T] (f32). k and v are
 * contiguous, or at T == 1 views whose heads lie `kvStride` elements apart (see kvHeadStride).
 */
function runForward(g: Geometry, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, kvStride = g.S * g.D): { out: Tensor; lse: Tensor } {
  const out = empty([g.B, g.Hq, g.T, g.D], q.dtype);
  const lse = empty([g.B, g.Hq, g.T], 'f32');
  if (out.size === 0) return { out, lse };
  const rt = getRuntime();
  const maskBuffer = mask ? mask.buffer(OP) : q.buffer(OP);
  const D4 = Math.ceil(g.D / 4);
  if (g.T === 1) {
    // Decode: one query per head, parallel over splits of the keys, then a combine.
    const { n, len } = decodeSplits(g.S);
    const p = params(g, mask, { n, len }, kvStride);
    const rows = g.B * g.Hq;
    const v2 = v2Kernel(rt, 'attention_decode_partial.v2', q.dtype, g.D);
    const partialGroups = (splits: number) => grid1d(rows * splits, v2 ? 1 : 32);
    const combineGroups = grid1d(rows * D4, 64);
    // A recorded decode step moves S and kv_offset with each key, and the splits and the partial kernel's
    // workgroups with them; its partials have room for the most splits.
    const pc = rt.recording === null ? p : Uint32Array.from(p);
    if (rt.recording !== null) {
      const resplit = (S: number, block: Uint32Array) => {
        const x = decodeSplits(S);
        block[SPLIT_WORDS[0]] = x.n;
        block[SPLIT_WORDS[1]] = x.len;
        return x.n;
      };
      rt.recording.followLength(p, DECODE_LENGTH_WORDS, -Infinity, Infinity, (S, block) => [...partialGroups(resplit(S, block)), 1]);
      rt.recording.followLength(pc, DECODE_LENGTH_WORDS, -Infinity, Infinity, (S, block) => {
        resplit(S, block);
        return [...combineGroups, 1];
      });
    }
    const room = rt.recording === null ? n : MAX_SPLITS;
    const partAcc = empty([rows, room, D4 * 4], 'f32');
    const partMl = empty([rows, room, 2], 'f32');
    // v2: a subgroup per (row, split) where subgroups have one fixed size; v1: a thread per (row, split).
    rt.dispatch({
      kernel: v2?.kernel ?? compileKernel(rt, 'attention_decode_partial', v1Defines(q.dtype, g.D, ['q', 'k', 'v'], [])),
      params: p,
      buffers: [q.buffer(OP), k.buffer(OP), v.buffer(OP), maskBuffer, partAcc.buffer(OP), partMl.buffer(OP)],
      workgroups: partialGroups(n),
      label: `attention decode ${v2 ? 'v2' : 'v1'}`,
    });
    const combine = compileKernel(rt, 'attention_decode_combine', v1Defines(q.dtype, g.D, [], ['o']));
    rt.dispatch({
      kernel: combine,
      params: pc,
      buffers: [partAcc.buffer(OP), partMl.buffer(OP), out.buffer(OP), lse.buffer(OP)],
      workgroups: combineGroups,
      label: 'attention decode combine',
    });
    partAcc.dispose('temporary of attention decode');
    partMl.dispose('temporary of attention decode');
    return { out, lse };
  }
  const v2 = v2Kernel(rt, 'attention_forward.v2', q.dtype, g.D);
  rt.dispatch({
    kernel: v2?.kernel ?? compileKernel(rt, 'attention_forward', v1Defines(q.dtype, g.D, ['q', 'k', 'v'], ['o'])),
    params: params(g, mask),
    buffers: [q.buffer(OP), k.buffer(OP), v.buffer(OP), maskBuffer, out.buffer(OP), lse.buffer(OP)],
    workgroups: [Math.ceil(g.T / (v2?.rows ?? ROWS)), g.B * g.Hq],
    label: `${OP} ${v2 ? 'v2' : 'v1'}`,
  });
  return { out, lse };
}

/** The backward kernels: delta, then dq (per query row) and dk, dv (per key row). */
function runBackward(
  g: Geometry,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  out: Tensor,
  lse: Tensor,
  dOut: Tensor,
  needs: [boolean, boolean, boolean],
): [Tensor | null, Tensor | null, Tensor | null] {
  const rt = getRuntime();
  const op = `${OP} backward`;
  const p = params(g, mask);
  const maskBuffer = mask ? mask.buffer(op) : q.buffer(op);
  const dq = needs[0] ? empty(q.shape, q.dtype) : null;
  const dk = needs[1] || needs[2] ? empty(k.shape, k.dtype) : null;
  const dv = needs[1] || needs[2] ? empty(v.shape, v.dtype) : null;
  const rows = g.B * g.Hq * g.T;
  if (rows === 0 || g.D === 0) return [dq, needs[1] ? dk : null, needs[2] ? dv : null];
  const stats = empty([g.B, g.Hq, g.T, 2], 'f32');
  rt.dispatch({
    kernel: compileKernel(rt, 'attention_backward_delta', v1Defines(q.dtype, g.D, ['o', 'd_o'], [])),
    params: p,
    buffers: [out.buffer(op), dOut.buffer(op), lse.buffer(op), stats.buffer(op)],
    workgroups: grid1d(rows, 64),
    label: `${op} delta`,
  });
  if (dq) {
    const v2 = v2Kernel(rt, 'attention_backward_dq.v2', q.dtype, g.D);
    rt.dispatch({
      kernel: v2?.kernel ?? compileKernel(rt, 'attention_backward_dq', v1Defines(q.dtype, g.D, ['q', 'k', 'v', 'd_o'], ['dq'])),
      params: p,
      buffers: [q.buffer(op), k.buffer(op), v.buffer(op), maskBuffer, dOut.buffer(op), stats.buffer(op), dq.buffer(op)],
      workgroups: [Math.ceil(g.T / (v2?.rows ?? ROWS)), g.B * g.Hq],
      label: `${op} dq ${v2 ? 'v2' : 'v1'}`,
    });
  }
  if (dk && dv && g.S > 0) {
    const v2 = v2Kernel(rt, 'attention_backward_dkv.v2', q.dtype, g.D);
    rt.dispatch({
      kernel: v2?.kernel ?? compileKernel(rt, 'attention_backward_dkv', v1Defines(q.dtype, g.D, ['q', 'k', 'v', 'd_o'], ['dk', 'dv'])),
      params: p,
      buffers: [q.buffer(op), k.buffer(op), v.buffer(op), maskBuffer, dOut.buffer(op), stats.buffer(op), dk.buffer(op), dv.buffer(op)],
      workgroups: [Math.ceil(g.S / (v2?.rows ?? ROWS)), g.B * g.Hkv],
      label: `${op} dk dv ${v2 ? 'v2' : 'v1'}`,
    });
  }
  stats.dispose('temporary of attention backward');
  return [dq, needs[1] ? dk : null, needs[2] ? dv : null];
}

/** What the backward reads: q, k, v, the output and its log-sum-exp, and the mask when there is one. */
type AttentionSaved = [Tensor, Tensor, Tensor, Tensor, Tensor] | [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];

const attentionOp = defineOp({
  name: OP,
  forward(ctx: OpContext<AttentionSaved, { geometry: Geometry }>, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, g: Geometry) {
    const grads = ctx.needsGrad(0) || ctx.needsGrad(1) || ctx.needsGrad(2);
    // Decoding reads the KV cache's prefix in place instead of copying it every step.
    const kvStride = g.T === 1 && !grads ? kvHeadStride(g, k, v) : null;
    const qc = contiguousData(OP, q);
    const [kc, vc] = kvStride === null ? [contiguousData(OP, k), contiguousData(OP, v)] : [k, v];
    const mc = mask ? contiguousData(OP, mask) : null;
    const { out, lse } = runForward(g, qc, kc, vc, mc, kvStride ?? undefined);
    if (grads) {
      ctx.saved = mc ? [qc, kc, vc, out, lse, mc] : [qc, kc, vc, out, lse];
    } else {
      lse.dispose('not needed without gradients');
    }
    ctx.data.geometry = g;
    return out;
  },
  // With s_ij = scale q_i . k_j, P = softmax over the keys row i sees, dP_ij = dO_i . v_j and
  // dS_ij = P_ij (dP_ij - delta_i), delta_i = dO_i . O_i:
  // dq_i = scale sum_j dS_ij k_j; dk_j = scale sum_i dS_ij q_i; dv_j = sum_i P_ij dO_i
  // (sums over the query heads of each kv head's group). No gradient flows to the mask.
  backward(ctx, grad) {
    const [q, k, v, out, lse, mask] = ctx.saved;
    const g = ctx.data.geometry;
    const dOut = contiguousData(`${OP} backward`, grad);
    const grads: (Tensor | null)[] = runBackward(g, q, k, v, mask ?? null, out, lse, dOut, [
      ctx.needsGrad(0),
      ctx.needsGrad(1),
      ctx.needsGrad(2),
    ]);
    if (ctx.inputs.length === 4) grads.push(null);
    return grads;
  },
});

/**
 * Scaled-dot-product attention with grouped-query heads and a causal mask by default:
 * out[b, h, i] = sum_j softmax_j(scale q[b, h, i] . k[b, hk, j]) v[b, hk, j] with hk = floor(h / (Hq / Hkv))
 * (as HF's repeat_kv), over the keys j query i sees: j <= i + (S - T) when causal (bottom-right aligned,
 * as with a KV cache), j > i + (S - T) - window with a sliding window, and keyPaddingMask[b, j] != 0. Never builds the T x S score matrix; T == 1 runs a
 * decode kernel split over the keys. A query row that sees no key at all (e.g. a left-padding row)
 * outputs zeros and gets zero gradient, where HF's eager path gives a uniform average or NaN depending
 * on the version; such rows carry label -100, so they never reach the loss.
 * q [B, Hq, T, D], k and v [B, Hkv, S, D] (D <= 256), f32 or f16 -> [B, Hq, T, D].
 * @example
 * const out = attention(q, k, v, { keyPaddingMask: mask }); // q [2, 8, T, 64], k/v [2, 2, T, 64], mask [2, T]
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const mask = options.keyPaddingMask ?? null;
  check(q, k, v, mask);
  const [B, Hq, T, D] = q.shape as [number, number, number, number];
  const [, Hkv, S] = k.shape as [number, number, number, number];
  const scale = options.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new ValueError(`${OP}: scale is ${scale}; pass a finite number`);
  const causal = options.causal ?? true;
  const window = options.window ?? 0;
  if (!Number.isSafeInteger(window) || window < 0 || window > 0xffffffff) {
    throw new ValueError(`${OP}: window is ${window}; pass a positive whole number of keys, or null for no sliding window`);
  }
  if (window > 0 && !causal) throw new ValueError(`${OP}: window ${window} with causal false; a sliding window applies to causal attention only`);
  const g: Geometry = { B, Hq, Hkv, T, S, D, scale, causal, window };
  if (composedAttentionFor(B, Hq, T, S)) return composedAttention(q, k, v, mask, g);
  return attentionOp(q, k, v, mask, g);
}
