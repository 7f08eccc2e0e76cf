// rope: rotary position embedding in Hugging Face LLaMA's rotate_half convention, with cos/sin
// tables computed on the host (float32 angles as torch computes them) and cached on the GPU.
import { getRuntime } from '../backend/context.js';
import type { Runtime } from '../backend/runtime.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { keep } from '../scope.js';
import { empty, fromHost, Tensor } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, coalesce, contiguousData } from './launch.js';
import { ropeAttentionScaling, ropeInvFreq, ropeSpec, ropeSpecKey, type RopeFrequencies, type RopeSpec } from './rope-scaling.js';

/** The smallest table built; device-resident positions get at least max(this, T) rows. */
const MIN_TABLE_ROWS = 2048;

interface RopeTable {
  rows: number;
  key: string;
  cos: Tensor; // [rows + 1, D/2] f32, the last row inv_freq
  sin: Tensor; // [rows + 1, D/2] f32, the last row the attention factor
}

const tables = new WeakMap<Runtime, Map<string, RopeTable>>();

/**
 * cos and sin [rows, D/2] of the f32 angles pos * inv_freq[j] for positions 0 .. rows-1 (torch's float32
 * steps), times the attention factor (YaRN's; 1 otherwise) in float32 as transformers' rotary embedding
 * scales them, each followed by one more row: inv_freq in cos, the attention factor in sin (the kernels'
 * fallback past the table).
 */
export function ropeAngles(D: number, freq: RopeFrequencies, rows: number): { cos: Float32Array; sin: Float32Array } {
  const h = D / 2;
  const invFreq = ropeInvFreq(D, freq);
  const scale = Math.fround(ropeAttentionScaling(freq));
  const cos = new Float32Array((rows + 1) * h);
  const sin = new Float32Array((rows + 1) * h);
  for (let pos = 0; pos < rows; pos++) {
    for (let j = 0; j < h; j++) {
      const angle = Math.fround(pos * invFreq[j]!);
      cos[pos * h + j] = Math.fround(Math.cos(angle)) * scale;
      sin[pos * h + j] = Math.fround(Math.sin(angle)) * scale;
    }
  }
  cos.set(invFreq, rows * h);
  sin.fill(scale, rows * h);
  return { cos, sin };
}

/**
 * A device's table for (D, spec) from `tables`, rebuilt by `build` at twice its size (at least
 * MIN_TABLE_ROWS and `rows`) when it covers fewer than `rows` positions; `build` disposes the one replaced.
 * Dynamic scaling keeps one table per scaling, rebuilt at the size needed whenever its sequence length changes.
 */
export function grownTable<T extends { rows: number; key: string }>(tables: WeakMap<Runtime, Map<string, T>>, D: number, spec: RopeSpec, rows: number, build: (size: number, replaced: T | undefined) => T): T {
  const rt = getRuntime();
  let byKey = tables.get(rt);
  if (!byKey) tables.set(rt, (byKey = new Map()));
  const key = ropeSpecKey(spec);
  const slot = spec.scaling?.type === 'dynamic' ? `${D}|${key.slice(0, key.lastIndexOf('|'))}` : `${D}|${key}`;
  const cached = byKey.get(slot);
  if (cached && cached.key === key && cached.rows >= rows) return cached;
  const grow = cached?.key === key ? 2 * cached.rows : 0;
  const table = build(Math.max(rows, MIN_TABLE_ROWS, grow), cached);
  byKey.set(slot, table);
  return table;
}

/** The cached cos/sin tables for (D, spec), grown (doubling) to cover `rows` positions. */
function ropeTable(D: number, spec: RopeSpec, rows: number): RopeTable {
  return grownTable(tables, D, spec, rows, (size, replaced) => {
    const { cos, sin } = ropeAngles(D, spec, size);
    // Graphs recorded earlier hold views of the old tables, which keep their storage alive.
    replaced?.cos.dispose('replaced by a larger rope table');
    replaced?.sin.dispose('replaced by a larger rope table');
    return {
      rows: size,
      key: ropeSpecKey(spec),
      cos: keep(fromHost(cos, [size + 1, D / 2], 'f32')),
      sin: keep(fromHost(sin, [size + 1, D / 2], 'f32')),
    };
  });
}

/**
 * x's and out's leading dims (all but T and D) as [N0, N1] with the strides of n0, n1 and t in each (elements),
 * or null where D is not one apart in both or the leading dims do not merge into two.
 */
function ropeLayout(x: Tensor, outStrides: readonly number[]): { N1: number; xs: number[]; os: number[] } | null {
  const r = x.rank;
  if (x.shape[r - 1]! > 1 && (x.strides[r - 1] !== 1 || outStrides[r - 1] !== 1)) return null;
  const lead = coalesce(x.shape.slice(0, r - 2), [x.strides.slice(0, r - 2), outStrides.slice(0, r - 2)]);
  if (lead.shape.length > 2) return null;
  const two = (st: number[]) => (st.length === 2 ? st : [0, st[0]!]);
  const [xs, os] = [two(lead.strides[0]!), two(lead.strides[1]!)];
  return { N1: lead.shape[lead.shape.length - 1]!, xs: [xs[0]!, xs[1]!, x.strides[r - 2]!], os: [os[0]!, os[1]!, outStrides[r - 2]!] };
}

/**
 * Strides of a dense tensor of `shape` whose dims lie in memory in the order `strides` gives them (largest
 * first, ties in dim order): a gradient laid out as its input was, e.g. a transposed view of heads.
 */
function denseStridesLike(shape: readonly number[], strides: readonly number[]): number[] {
  const order = shape.map((_, i) => i).sort((a, b) => strides[b]! - strides[a]! || a - b);
  const out = new Array<number>(shape.length).fill(0);
  let step = 1;
  for (let k = order.length - 1; k >= 0; k--) {
    out[order[k]!] = step;
    step *= shape[order[k]!]!;
  }
  return out;
}

/**
 * Rotates x ([..., T, D], read through its strides where D is one apart and its leading dims merge into two, else
 * copied first) into a new tensor with `outStrides` (dense; default contiguous).
 */
function runRope(op: string, x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, rows: number, sign: number, outStrides?: readonly number[]): Tensor {
  const alloc = (strides?: readonly number[]) => {
    const dense = empty(x.shape, x.dtype);
    if (strides === undefined) return dense;
    const view = dense.view(x.shape, strides, 0, op);
    dense.dispose('replaced by its view in the input\'s layout');
    return view;
  };
  let out = alloc(outStrides);
  const D = x.shape[x.rank - 1]!;
  const T = x.shape[x.rank - 2]!;
  const pairs = out.size / 2;
  if (pairs === 0) return out;
  const N = out.size / (T * D);
  const B = positions.rank === 2 ? positions.shape[0]! : 1;
  const rt = getRuntime();
  // Read in place where the layouts allow, else from a contiguous copy, and into a contiguous out as a last resort.
  let xc = x;
  let layout = ropeLayout(x, out.strides);
  if (layout === null) {
    xc = contiguousData(op, x);
    layout = ropeLayout(xc, out.strides);
  }
  if (layout === null) {
    out.dispose('the layout asked for does not fit the kernel');
    out = alloc();
    layout = ropeLayout(xc, out.strides);
  }
  if (layout === null) throw new Error(`internal: ${op} cannot rotate ${fmtShape(x.shape)} into a contiguous tensor`);
  const params = packParams('rope', {
    pairs,
    T_len: T,
    h: D / 2,
    per_batch: N / B,
    pos_bstride: positions.rank === 2 ? T : 0,
    table_rows: rows,
    sign,
    N1: layout.N1,
    x_offset: xc.offset,
    xs_n0: layout.xs[0]!,
    xs_n1: layout.xs[1]!,
    xs_t: layout.xs[2]!,
    os_n0: layout.os[0]!,
    os_n1: layout.os[1]!,
    os_t: layout.os[2]!,
  });
  rt.dispatch({
    kernel: compileKernel(rt, 'rope', { T: x.dtype, T_IS_F16: String(x.dtype === 'f16') }),
    params,
    buffers: [xc.buffer(op), positions.buffer(op), cos.buffer(op), sin.buffer(op), out.buffer(op)],
    workgroups: grid1d(pairs, 256),
    label: op,
  });
  if (xc !== x) xc.dispose('temporary copy of rope');
  return out;
}

/**
 * Rotary position embedding, Hugging Face LLaMA convention (rotate_half): with h = D/2 and
 * angle = pos * inv_freq[j], inv_freq[j] = 1 / theta^(2j/D) (scaled as `freq.scaling` says, see
 * {@link RopeScaling} and {@link ropeInvFreq}),
 * out[..., j] = x[j] cos - x[j+h] sin and out[..., j+h] = x[j+h] cos + x[j] sin, cos and sin multiplied
 * by YaRN's attention factor (see {@link ropeAttentionScaling}; 1 for the other scalings).
 * x is [B, H, T, D] (or any [..., T, D]); positions are i32 [T], or [B, T] with one row per batch
 * entry (B = x's first dim). `freq` is theta (default 10000) or a {@link RopeSpec}. cos/sin come from
 * f32 tables computed on the host and cached per (D, spec); positions with a host copy grow the table
 * to cover them, device-resident positions beyond the table (at least max(2048, T) rows) fall back to
 * the GPU's less precise cos/sin of the same angles. positions gets no gradient.
 * @example
 * const q2 = rope(q, tensor(new Int32Array([0, 1, 2, 3])), 10000); // q: [1, 8, 4, 64]
 * const q3 = rope(q, positions, { theta: 10000, scaling: { type: 'linear', factor: 4 } });
 */
export const rope = defineOp({
  name: 'rope',
  forward(ctx: OpContext<[Tensor, Tensor, Tensor], { rows: number; gradStrides: number[] }>, x: Tensor, positions: Tensor, freq: RopeFrequencies = 10000) {
    x.storage('rope');
    positions.storage('rope');
    checkFloat('rope', x);
    if (positions.dtype !== 'i32') throw new DTypeError(`rope: positions must be i32, got ${positions.dtype} ${fmtShape(positions.shape)}`);
    if (x.rank < 2) throw new ShapeError(`rope: x is ${fmtShape(x.shape)}; expected [..., T, D]`);
    const D = x.shape[x.rank - 1]!;
    const T = x.shape[x.rank - 2]!;
    if (D % 2 !== 0) throw new ShapeError(`rope: x is ${fmtShape(x.shape)}; the head dim D = ${D} must be even`);
    const perBatch = positions.rank === 2 && x.rank >= 3 && positions.shape[0] === x.shape[0] && positions.shape[1] === T;
    if (!(positions.rank === 1 && positions.shape[0] === T) && !perBatch) {
      throw new ShapeError(
        `rope: x is ${fmtShape(x.shape)}, positions is ${fmtShape(positions.shape)}; positions must be [T] = [${T}]` +
          (x.rank >= 3 ? ` or [B, T] = [${x.shape[0]}, ${T}]` : ''),
      );
    }
    const spec = ropeSpec('rope', freq);
    const host = positions.hostIndices();
    let needed = T;
    if (host) {
      for (let i = 0; i < host.length; i++) {
        const p = host[i]!;
        if (p < 0) throw new ValueError(`rope: positions[${i}] = ${p} is negative; positions must be >= 0`);
        if (p + 1 > needed) needed = p + 1;
      }
    }
    const table = D === 0 ? null : ropeTable(D, spec, needed);
    const pc = contiguousData('rope', positions);
    const cos = table ? table.cos.detach() : empty([0], 'f32');
    const sin = table ? table.sin.detach() : empty([0], 'f32');
    const rows = table?.rows ?? 0;
    ctx.saved = [pc, cos, sin];
    // dx is laid out as x is (a view of heads transposed back is then contiguous: no copy to reshape it).
    ctx.data = { rows, gradStrides: denseStridesLike(x.shape, x.strides) };
    return runRope('rope', x, pc, cos, sin, rows, 1);
  },
  // The rotation is orthogonal: dx is dy rotated by -angle (sin negated). positions: none.
  backward(ctx, g) {
    const [pc, cos, sin] = ctx.saved;
    const { rows, gradStrides } = ctx.data;
    return [runRope('rope backward', g, pc, cos, sin, rows, -1, gradStrides), null];
  },
});
