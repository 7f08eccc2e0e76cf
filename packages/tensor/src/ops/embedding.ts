// embedding: row lookup in a [V, C] table; the backward is a deterministic scatter-add without
// float atomics (rows grouped by id on the host when the ids have a host copy).
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape, unravelIndex } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { empty, fromHost, Tensor, type DType } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, contiguousData, runFill } from './launch.js';

/** Ids grouped by value (CSR): unique ids ascending, offsets into positions (ascending per id). */
function groupById(ids: Int32Array | Uint32Array): { uniq: Int32Array; offsets: Int32Array; positions: Int32Array } {
  const order = Array.from(ids.keys()).sort((a, b) => ids[a]! - ids[b]! || a - b);
  const uniq: number[] = [];
  const offsets: number[] = [];
  order.forEach((pos, k) => {
    if (k === 0 || ids[pos] !== ids[order[k - 1]!]) {
      uniq.push(ids[pos]!);
      offsets.push(k);
    }
  });
  offsets.push(order.length);
  return { uniq: Int32Array.from(uniq), offsets: Int32Array.from(offsets), positions: Int32Array.from(order) };
}

/**
 * Embedding lookup: out[..., :] = table[ids[...], :] for i32 ids of any shape and a [V, C] table;
 * the result is [...ids.shape, C]. Ids created from host data (see Tensor.hostIndices) are
 * bounds-checked and an id outside [0, V) raises a ValueError; ids computed on the GPU cannot be
 * checked without a readback, so the kernel gives a row of zeros for them (and no gradient).
 * The gradient into the table sums the rows of dy of equal ids in ascending position order,
 * deterministically: grouped on the host for host ids, by a per-row scan of the ids otherwise.
 * @example
 * const h = embedding(tensor(new Int32Array([1, 5, 5]), [1, 3]), wte); // [1, 3, C]
 */
export const embedding = defineOp({
  name: 'embedding',
  tensors: ['ids', 'table'],
  forward(ctx: OpContext<[Tensor], { V: number; C: number; host: Int32Array | Uint32Array | null; dtype: DType }>, ids: Tensor, table: Tensor) {
    ids.storage('embedding');
    table.storage('embedding');
    if (ids.dtype !== 'i32') throw new DTypeError(`embedding: ids must be i32, got ${ids.dtype} ${fmtShape(ids.shape)}`);
    checkFloat('embedding', table);
    if (table.rank !== 2) throw new ShapeError(`embedding: table is ${fmtShape(table.shape)}; expected [V, C]`);
    const [V, C] = table.shape as [number, number];
    const host = ids.hostIndices();
    if (host) {
      for (let i = 0; i < host.length; i++) {
        const id = host[i]!;
        if (id < 0 || id >= V) {
          throw new ValueError(
            `embedding: ids${fmtShape(unravelIndex(i, ids.shape))} = ${id} is outside the table's ${V} rows ` +
              `(table ${fmtShape(table.shape)}); ids must be in [0, ${V})`,
          );
        }
      }
    }
    const out = empty([...ids.shape, C], table.dtype);
    const ic = contiguousData('embedding', ids);
    const tc = contiguousData('embedding', table);
    if (out.size > 0) {
      const rt = getRuntime();
      rt.dispatch({
        kernel: compileKernel(rt, 'embedding_forward', { T: table.dtype }),
        params: packParams('embedding_forward', { numel: out.size, C, V }),
        buffers: [ic.buffer('embedding'), tc.buffer('embedding'), out.buffer('embedding')],
        workgroups: grid1d(out.size, 256),
        label: 'embedding',
      });
    }
    ctx.saved = [ic];
    ctx.data = { V, C, host, dtype: table.dtype };
    return out;
  },
  // dtable[v, :] = sum over positions n with ids[n] == v of dy[n, :]; ids: no gradient
  backward(ctx, g) {
    const [ids] = ctx.saved;
    const { V, C, host, dtype } = ctx.data;
    const dy = contiguousData('embedding backward', g);
    const rt = getRuntime();
    const N = ids.size;
    if (V * C === 0 || N === 0) return [null, runFill([V, C], dtype, 0, null)];
    if (host) {
      const { uniq, offsets, positions } = groupById(host);
      const dtable = runFill([V, C], dtype, 0, null);
      const tu = fromHost(uniq, [uniq.length], 'i32');
      const to = fromHost(offsets, [offsets.length], 'i32');
      const tp = fromHost(positions, [positions.length], 'i32');
      rt.dispatch({
        kernel: compileKernel(rt, 'embedding_backward_csr', { T: dtype }),
        params: packParams('embedding_backward_csr', { rows: uniq.length, C }),
        buffers: [dy.buffer('embedding'), tu.buffer('embedding'), to.buffer('embedding'), tp.buffer('embedding'), dtable.buffer('embedding')],
        workgroups: grid1d(uniq.length, 1),
        label: 'embedding backward',
      });
      return [null, dtable];
    }
    const dtable = empty([V, C], dtype);
    rt.dispatch({
      kernel: compileKernel(rt, 'embedding_backward_scan', { T: dtype }),
      params: packParams('embedding_backward_scan', { rows: V, C, N }),
      buffers: [dy.buffer('embedding'), ids.buffer('embedding'), dtable.buffer('embedding')],
      workgroups: grid1d(V, 1),
      label: 'embedding backward',
    });
    return [null, dtable];
  },
});
