// ropeCache: decoding's RoPE and KV-cache writes in one dispatch (kernels/rope_cache.wgsl). Writes into
// existing storage outside autograd, as copyInto does.
import { getRuntime } from '../backend/context.js';
import type { Runtime } from '../backend/runtime.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { isGradEnabled } from '../grad-mode.js';
import { compileKernel, grid1d, packParams, paramWord } from '../kernels.js';
import { keep } from '../scope.js';
import { empty, fromHost, type Tensor } from '../tensor.js';
import { contiguousData } from './launch.js';
import { grownTable, ropeAngles } from './rope.js';
import { ropeSpec, ropeSpecKey, type RopeFrequencies, type RopeSpec } from './rope-scaling.js';

interface PairTable {
  rows: number;
  key: string;
  pairs: Tensor; // [rows + 1, D/2, 2] f32, the last row (inv_freq, attention factor)
}

const PAST_WORD = [paramWord('rope_cache', 'past')];

/** Per (D, spec): (cos, sin) pairs in f32, the values of rope's two tables side by side. */
const tables = new WeakMap<Runtime, Map<string, PairTable>>();

function pairTable(D: number, spec: RopeSpec, rows: number): PairTable {
  return grownTable(tables, D, spec, rows, (size, replaced) => {
    const { cos, sin } = ropeAngles(D, spec, size);
    const pairs = new Float32Array(2 * cos.length);
    for (let i = 0; i < cos.length; i++) {
      pairs[2 * i] = cos[i]!;
      pairs[2 * i + 1] = sin[i]!;
    }
    replaced?.pairs.dispose('replaced by a larger rope table');
    return { rows: size, key: ropeSpecKey(spec), pairs: keep(fromHost(pairs, [size + 1, D / 2, 2], 'f32')) };
  });
}

/** The element stride between the B T rows of a [B, T, n] projection read in place, or null (last dim not contiguous, rows uneven). */
function rowStride(t: Tensor): number | null {
  const [B, T, n] = t.shape as [number, number, number];
  if (t.strides[2] !== 1 && n > 1) return null;
  if (B > 1 && T > 1 && t.strides[0] !== T * t.strides[1]!) return null;
  return T > 1 ? t.strides[1]! : B > 1 ? t.strides[0]! : n;
}

/**
 * Rotates the new queries and keys by their positions (Hugging Face rotate_half RoPE, exactly as
 * {@link rope} computes it) and writes the rotated keys and the values into a KV cache at positions
 * [past, past + T), in one dispatch; returns the rotated queries [B, H, T, D].
 * q [B, T, H D], k and v [B, T, Hkv D] are projection outputs (views such as column slices of one fused
 * projection are read in place); keys and values are the cache's own contiguous [B, Hkv, L, D] tensors;
 * positions are i32 [T] or [B, T]. Not differentiable: inputs that require a gradient while grad is
 * enabled are refused. Equals rope of q's heads, and copyInto of rope of k's heads and of v's heads
 * into the cache slices [past, past + T). `freq` is theta or a {@link RopeSpec}, as for rope.
 * @example
 * const qh = ropeCache(q, k, v, positions, 10000, keys, values, past); // keys, values [B, Hkv, L, D]
 */
export function ropeCache(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, freq: RopeFrequencies, keys: Tensor, values: Tensor, past: number): Tensor {
  const op = 'ropeCache';
  for (const t of [q, k, v, values]) {
    if (t.dtype !== keys.dtype || (t.dtype !== 'f32' && t.dtype !== 'f16')) {
      throw new DTypeError(`${op}: q, k, v, keys and values must share one float dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}, ${keys.dtype}, ${values.dtype}`);
    }
  }
  if (positions.dtype !== 'i32') throw new DTypeError(`${op}: positions must be i32, got ${positions.dtype} ${fmtShape(positions.shape)}`);
  for (const c of [keys, values]) {
    if (c.rank !== 4 || !c.isContiguous || c.offset !== 0 || c.shape.some((d, i) => d !== keys.shape[i])) {
      throw new ShapeError(`${op}: keys ${fmtShape(keys.shape)} and values ${fmtShape(values.shape)} must be contiguous [B, Hkv, L, D] tensors of their own, of one shape`);
    }
  }
  const [B, Hkv, L, D] = keys.shape as [number, number, number, number];
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3 || q.shape[0] !== B || D % 2 !== 0) {
    throw new ShapeError(`${op}: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} should be [B, T, heads * D] with B = ${B} and an even D = ${D} (cache ${fmtShape(keys.shape)})`);
  }
  const T = q.shape[1]!;
  const H = q.shape[2]! / D;
  for (const t of [k, v]) {
    if (t.shape[0] !== B || t.shape[1] !== T || t.shape[2] !== Hkv * D) {
      throw new ShapeError(`${op}: k and v are ${fmtShape(k.shape)} and ${fmtShape(v.shape)}; expected [${B}, ${T}, ${Hkv * D}] for the cache ${fmtShape(keys.shape)} and q ${fmtShape(q.shape)}`);
    }
  }
  if (!Number.isInteger(H)) throw new ShapeError(`${op}: q is ${fmtShape(q.shape)}; its last dim must be a multiple of the head dim ${D}`);
  if (!(positions.rank === 1 && positions.shape[0] === T) && !(positions.rank === 2 && positions.shape[0] === B && positions.shape[1] === T)) {
    throw new ShapeError(`${op}: positions is ${fmtShape(positions.shape)}; expected [${T}] or [${B}, ${T}]`);
  }
  if (!Number.isInteger(past) || past < 0 || past + T > L) throw new ValueError(`${op}: positions [${past}, ${past + T}) do not fit a cache of length ${L}`);
  const spec = ropeSpec(op, freq);
  if (isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad)) {
    throw new ValueError(`${op}: writes the cache outside autograd; call it under noGrad() or use rope and copyInto`);
  }
  const host = positions.hostIndices();
  let needed = T;
  if (host) {
    for (let i = 0; i < host.length; i++) {
      const p = host[i]!;
      if (p < 0) throw new ValueError(`${op}: positions[${i}] = ${p} is negative; positions must be >= 0`);
      needed = Math.max(needed, p + 1);
    }
  }
  const out = empty([B, H, T, D], q.dtype);
  const pairs = B * T * (H + 2 * Hkv) * (D / 2);
  if (pairs === 0) return out;
  const [qr, kr, vr] = [q, k, v].map((t) => (rowStride(t) === null ? contiguousData(op, t) : t)) as [Tensor, Tensor, Tensor];
  const table = pairTable(D, spec, needed);
  const pc = contiguousData(op, positions);
  const rt = getRuntime();
  keys.storage(op).bump();
  values.storage(op).bump();
  const params = packParams('rope_cache', {
    pairs,
    T_len: T,
    h: D / 2,
    H,
    Hkv,
    L,
    past,
    q_offset: qr.offset,
    q_row: rowStride(qr)!,
    k_offset: kr.offset,
    k_row: rowStride(kr)!,
    v_offset: vr.offset,
    v_row: rowStride(vr)!,
    pos_bstride: positions.rank === 2 ? T : 0,
    table_rows: table.rows,
  });
  // A recorded decode step writes one position further each key, and holds while the table covers its positions.
  if (rt.recording !== null) {
    rt.recording.followLength(params, PAST_WORD);
    if (host !== null) rt.recording.boundInput(pc.buffer(op), table.rows);
  }
  rt.dispatch({
    kernel: compileKernel(rt, 'rope_cache', { T: q.dtype, T_IS_F16: String(q.dtype === 'f16') }),
    params,
    buffers: [qr.buffer(op), kr.buffer(op), vr.buffer(op), pc.buffer(op), table.pairs.buffer(op), out.buffer(op), keys.buffer(op), values.buffer(op)],
    workgroups: grid1d(pairs, 256),
    label: op,
  });
  return out;
}
