// Batched matrix product with broadcast batch dimensions. Transposed (or otherwise strided) operands
// are read in place through their strides. The gradient keeps only the operand the other side needs.
import { getRuntime } from '../backend/context.js';
import { ShapeError, fmtShape } from '../errors.js';
import { compileKernel, Params } from '../kernels.js';
import { empty, numel, Tensor } from '../tensor.js';
import { defineOp } from './define.js';
import { broadcastShapes, checkFloat, checkSameDType, coalesce, sumToShape } from './launch.js';
import { transpose } from './views.js';

const MAX_BATCH_RANK = 4;

/** Runs the kernel for a [..., M, K] x [..., K, N] product of any strides. */
export function runMatmul(op: string, a: Tensor, b: Tensor): Tensor {
  checkFloat(op, a, b);
  checkSameDType(op, a, b);
  if (a.rank < 2 || b.rank < 2) {
    throw new ShapeError(`${op}: operands need at least 2 dimensions, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  }
  const [M, K] = [a.shape[a.rank - 2]!, a.shape[a.rank - 1]!];
  const [K2, N] = [b.shape[b.rank - 2]!, b.shape[b.rank - 1]!];
  if (K !== K2) {
    throw new ShapeError(`${op}: a is ${fmtShape(a.shape)}, b is ${fmtShape(b.shape)}; a's last dim (${K}) must equal b's second-to-last (${K2})`);
  }
  const batchShape = broadcastShapes(op, a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = empty([...batchShape, M, N], a.dtype);
  if (out.size === 0) return out;
  const batchStrides = (t: Tensor) => {
    const s = new Array<number>(batchShape.length).fill(0);
    const lead = batchShape.length - (t.rank - 2);
    for (let i = 0; i < t.rank - 2; i++) s[lead + i] = t.shape[i] === 1 ? 0 : t.strides[i]!;
    return s;
  };
  const merged = coalesce(batchShape, [batchStrides(a), batchStrides(b)]);
  if (merged.shape.length > MAX_BATCH_RANK) {
    throw new ShapeError(`${op}: batch dims of ${fmtShape(a.shape)} x ${fmtShape(b.shape)} do not merge into ${MAX_BATCH_RANK}; make the operands contiguous`);
  }
  const batch = numel(batchShape);
  if (batch > 65535) throw new ShapeError(`${op}: batch of ${batch} matrices exceeds 65535; reshape into fewer, larger matrices`);
  const rt = getRuntime();
  const kernel = compileKernel(rt, 'matmul', { T: a.dtype });
  const params = new Params()
    .u32(M, N, K, merged.shape.length, a.offset, b.offset)
    .u32(a.strides[a.rank - 2]!, a.strides[a.rank - 1]!, b.strides[b.rank - 2]!, b.strides[b.rank - 1]!)
    .u32Array(merged.shape, 4)
    .u32Array(merged.strides[0]!, 4)
    .u32Array(merged.strides[1]!, 4)
    .build();
  rt.dispatch({
    kernel,
    params,
    buffers: [a.buffer(op), b.buffer(op), out.buffer(op)],
    workgroups: [Math.ceil(N / 16), Math.ceil(M / 16), batch],
    label: op,
  });
  return out;
}

/**
 * Matrix product of the last two dimensions, broadcasting the rest: [..., M, K] x [..., K, N] -> [..., M, N].
 * @example matmul(x, transpose(w)) // x [B, T, C] times w [O, C] read transposed in place
 */
export const matmul = defineOp({
  name: 'matmul',
  forward(ctx, a: Tensor, b: Tensor) {
    ctx.saved.push(a, b);
    return runMatmul('matmul', a, b);
  },
  // dA = dC B^T, dB = A^T dC (summed over broadcast batch dims)
  backward(ctx, g) {
    const [a, b] = ctx.saved as [Tensor, Tensor];
    const da = ctx.needsGrad(0) ? sumToShape('matmul', runMatmul('matmul backward', g, transpose(b)), a.shape) : null;
    const db = ctx.needsGrad(1) ? sumToShape('matmul', runMatmul('matmul backward', transpose(a), g), b.shape) : null;
    return [da, db];
  },
});
