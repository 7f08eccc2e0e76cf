// Batched matrix product with broadcast batch dimensions. Transposed (or otherwise strided) operands
// are read in place through their strides. The op describes the product (prepare); which kernel runs it
// is planned and encoded on the backend (backend/matmul-plan.ts, backend/matmul-encode.ts) under the
// adapter's choice (matmul-choice.ts, searched by tuning.ts). An operand a kernel cannot read in place is
// copied only when the plan finds the copy cheap next to the product.
import { getRuntime } from '../backend/context.js';
import { encodeMatmul } from '../backend/matmul-encode.js';
import { plan, type MatmulPlan, type Problem } from '../backend/matmul-plan.js';
import { ShapeError, fmtShape } from '../errors.js';
import { contiguousStrides, empty, numel, Tensor } from '../tensor.js';
import { choiceFor } from '../tuning.js';
import { defineOp, type OpContext } from './define.js';
import { add, mul } from './arithmetic.js';
import { broadcastShapes, checkFloat, checkSameDType, coalesce, runCopy, sumToShape } from './launch.js';
import { contiguous, reshape, transpose } from './views.js';

const MAX_BATCH_RANK = 4;

interface Prepared {
  problem: Problem;
  out: Tensor;
}

/** An addend of the product's shape, in its dtype and contiguous, added to alpha times the product (torch.addmm's input, beta = 1). */
export interface Addend {
  tensor: Tensor;
  alpha: number;
}

/**
 * Checks shapes, allocates the output and describes the product; folds a shared b's batch into M. A bias
 * must be [N] in a's dtype, its elements one apart; an addend the product's shape in a's dtype, contiguous.
 */
function prepare(op: string, a: Tensor, b: Tensor, bias?: Tensor, addend?: Addend): Prepared {
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
  if (bias !== undefined) {
    checkSameDType(op, a, bias);
    if (bias.rank !== 1 || bias.shape[0] !== N) throw new ShapeError(`${op}: the bias is ${fmtShape(bias.shape)}; expected [${N}], one value per output column`);
    if (N > 1 && bias.strides[0] !== 1) throw new ShapeError(`internal: ${op} was given a bias with stride ${bias.strides[0]}; make it contiguous first`);
  }
  const batchShape = broadcastShapes(op, a.shape.slice(0, -2), b.shape.slice(0, -2));
  const outShape = [...batchShape, M, N];
  if (addend !== undefined) {
    const t = addend.tensor;
    checkSameDType(op, a, t);
    if (!sameShape(t.shape, outShape)) throw new ShapeError(`${op}: the addend is ${fmtShape(t.shape)}; expected the product's shape ${fmtShape(outShape)}`);
    if (!t.isContiguous) throw new ShapeError(`internal: ${op} was given an addend that is not contiguous; make it contiguous first`);
  }
  const out = empty(outShape, a.dtype);
  const merged = coalesce(batchShape, [batchStrides(a, batchShape.length), batchStrides(b, batchShape.length)]);
  const aSm = a.strides[a.rank - 2]!;
  let problem: Problem = {
    dtype: a.dtype,
    M,
    N,
    K,
    batchShape: merged.shape,
    a: { buffer: a.buffer(op), offset: a.offset, rowStride: aSm, colStride: a.strides[a.rank - 1]!, batchStrides: merged.strides[0]! },
    b: { buffer: b.buffer(op), offset: b.offset, rowStride: b.strides[b.rank - 2]!, colStride: b.strides[b.rank - 1]!, batchStrides: merged.strides[1]! },
    c: out.buffer(op),
    ...(bias === undefined ? {} : { bias: { buffer: bias.buffer(op), offset: bias.offset } }),
    ...(addend === undefined ? {} : { addend: { buffer: addend.tensor.buffer(op), offset: addend.tensor.offset, alpha: addend.alpha } }),
  };
  // One batch dim over which b is shared and a's rows continue: a single [batch * M, K] x [K, N] product.
  if (merged.shape.length === 1 && merged.strides[1]![0] === 0 && merged.shape[0]! > 1 && (merged.strides[0]![0] === M * aSm || M === 1)) {
    const rows = merged.shape[0]! * M;
    const rowStride = M === 1 ? merged.strides[0]![0]! : aSm;
    problem = { ...problem, M: rows, batchShape: [1], a: { ...problem.a, rowStride, batchStrides: [0] }, b: { ...problem.b, batchStrides: [0] } };
  }
  if (problem.batchShape.length > MAX_BATCH_RANK) {
    throw new ShapeError(`${op}: batch dims of ${fmtShape(a.shape)} x ${fmtShape(b.shape)} do not merge into ${MAX_BATCH_RANK}; make the operands contiguous`);
  }
  const batch = numel(problem.batchShape);
  if (batch > 65535) throw new ShapeError(`${op}: batch of ${batch} matrices exceeds 65535; reshape into fewer, larger matrices`);
  return { problem, out };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The strides of t's batch dims (all but its last two) as the broadcast batch of `rank` dims reads them. */
function batchStrides(t: Tensor, rank: number): number[] {
  const s = new Array<number>(rank).fill(0);
  const lead = rank - (t.rank - 2);
  for (let i = 0; i < t.rank - 2; i++) s[lead + i] = t.shape[i] === 1 ? 0 : t.strides[i]!;
  return s;
}

/** A contiguous copy of an operand. */
function copyOperand(op: string, t: Tensor): Tensor {
  const y = empty(t.shape, t.dtype);
  runCopy(op, t, y);
  return y;
}

/**
 * Runs a [..., M, K] x [..., K, N] product of any strides with the adapter's chosen kernels, adding a
 * contiguous bias [N] to every row before the one rounding where given, and returning addend + alpha
 * (product + bias), rounded once, where an addend (contiguous, the product's shape) is given.
 */
export function runMatmul(op: string, a: Tensor, b: Tensor, bias?: Tensor, addend?: Addend): Tensor {
  const rt = getRuntime();
  const { problem, out } = prepare(op, a, b, bias, addend);
  if (out.size === 0) return out;
  const pl = plan(problem, choiceFor(rt), rt.info.maxStorageBufferBindingSize);
  if (!pl.copyA && !pl.copyB) {
    encodeMatmul(rt, problem, pl, op);
    return out;
  }
  // Copies keep the operands' own batch shapes, so the product is re-described from the copies.
  const ac = pl.copyA ? copyOperand(op, a) : a;
  const bc = pl.copyB ? copyOperand(op, b) : b;
  const { problem: p2, out: out2 } = prepare(op, ac, bc, bias, addend);
  out2.dispose('temporary of matmul');
  encodeMatmul(rt, { ...p2, c: problem.c }, plan(p2, choiceFor(rt), rt.info.maxStorageBufferBindingSize), op);
  if (ac !== a) ac.dispose('temporary copy of matmul');
  if (bc !== b) bc.dispose('temporary copy of matmul');
  return out;
}

/** The plan a product of these operands would use now (which kernel, which copies). */
export function matmulPlan(a: Tensor, b: Tensor): MatmulPlan {
  const rt = getRuntime();
  const { problem, out } = prepare('matmulPlan', a, b);
  out.dispose('matmulPlan');
  return plan(problem, choiceFor(rt), rt.info.maxStorageBufferBindingSize);
}

/** a [K] read as [1, K] and b [K] as [K, 1] (views; torch.matmul's 1-D operands); others as they are. */
function asMatrices(a: Tensor, b: Tensor): [Tensor, Tensor] {
  return [
    a.rank === 1 ? a.view([1, a.shape[0]!], [0, a.strides[0]!], a.offset, 'matmul') : a,
    b.rank === 1 ? b.view([b.shape[0]!, 1], [b.strides[0]!, 0], b.offset, 'matmul') : b,
  ];
}

/** The product's shape as torch.matmul gives it: the rows' dim gone when a is 1-D, the columns' when b is. */
function productShape(matrixShape: readonly number[], aRank: number, bRank: number): number[] {
  const r = matrixShape.length;
  return matrixShape.filter((_, i) => !(aRank === 1 && i === r - 2) && !(bRank === 1 && i === r - 1));
}

/**
 * Matrix product of the last two dimensions, broadcasting the rest: [..., M, K] x [..., K, N] -> [..., M, N].
 * As torch.matmul, a 1-D a [K] is a row that is dropped from the result ([K] x [..., K, N] -> [..., N]),
 * a 1-D b [K] a column that is dropped ([..., M, K] x [K] -> [..., M]), and two give their dot product ([]).
 * @example matmul(x, transpose(w)) // x [B, T, C] times w [O, C] read transposed in place
 */
export const matmul = defineOp({
  name: 'matmul',
  // Each gradient needs only the other operand: a is kept when b needs a gradient, b when a does.
  forward(ctx: OpContext<Tensor[], { shapes: [readonly number[], readonly number[]] }>, a: Tensor, b: Tensor) {
    if (a.rank === 0 || b.rank === 0) {
      throw new ShapeError(`matmul: both operands need at least 1 dimension, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}; multiply by a scalar with mul`);
    }
    ctx.data.shapes = [a.shape, b.shape];
    if (ctx.needsGrad(1)) ctx.saved.push(a);
    if (ctx.needsGrad(0)) ctx.saved.push(b);
    if (a.rank >= 2 && b.rank >= 2) return runMatmul('matmul', a, b);
    const [a2, b2] = asMatrices(a, b);
    const out = runMatmul('matmul', a2, b2);
    if (a2 !== a) a2.dispose('temporary view of matmul');
    if (b2 !== b) b2.dispose('temporary view of matmul');
    const shape = productShape(out.shape, a.rank, b.rank);
    const y = out.view(shape, contiguousStrides(shape), 0);
    out.dispose('replaced by a reshaped view');
    return y;
  },
  // dA = dC B^T, dB = A^T dC (summed over broadcast batch dims)
  backward(ctx, g) {
    const [aShape, bShape] = ctx.data.shapes;
    const a = ctx.needsGrad(1) ? ctx.saved[0]! : null;
    const b = ctx.needsGrad(0) ? ctx.saved[ctx.saved.length - 1]! : null;
    if (aShape.length >= 2 && bShape.length >= 2) {
      const da = b !== null ? sumToShape('matmul', runMatmul('matmul backward', g, transpose(b)), aShape) : null;
      const db = a !== null ? sumToShape('matmul', runMatmul('matmul backward', transpose(a), g), bShape) : null;
      return [da, db];
    }
    // 1-D operands: the product's dropped dims come back as size 1, and each gradient leaves as its operand's shape.
    const gShape = [...g.shape];
    if (aShape.length === 1) gShape.splice(bShape.length === 1 ? gShape.length : gShape.length - 1, 0, 1);
    if (bShape.length === 1) gShape.push(1);
    const g2 = reshape(g, gShape);
    const a2Shape = aShape.length === 1 ? [1, aShape[0]!] : aShape;
    const b2Shape = bShape.length === 1 ? [bShape[0]!, 1] : bShape;
    const da = b !== null ? reshape(sumToShape('matmul', runMatmul('matmul backward', g2, transpose(reshape(b, b2Shape))), a2Shape), aShape) : null;
    const db = a !== null ? reshape(sumToShape('matmul', runMatmul('matmul backward', transpose(reshape(a, a2Shape)), g2), b2Shape), bShape) : null;
    return [da, db];
  },
});

/**
 * PyTorch's F.linear: x [..., in] times w [out, in] read transposed in place, plus bias [out] where given:
 * [..., out]. The bias is added to the f32 sums before the one rounding to x's dtype, as addmm (cuBLASLt's
 * bias epilogue) does, where matmul(x, transpose(w)) then add(y, bias) rounds twice in f16. Gradients:
 * dx = dy w, dw = dy^T x and dbias = dy summed over every dim but the last.
 * @example linear(x, w, b) // x [B, T, C], w [O, C], b [O] -> [B, T, O]
 */
export const linear = defineOp({
  name: 'linear',
  tensors: ['x', 'w', 'bias?'],
  // Each product's gradient needs only the other operand: x is kept when w needs a gradient, w when x does.
  forward(ctx: OpContext<Tensor[], { xShape: readonly number[]; wShape: readonly number[] }>, x: Tensor, w: Tensor, bias?: Tensor | null) {
    if (x.rank === 0 || w.rank !== 2 || x.shape[x.rank - 1] !== w.shape[1]) {
      throw new ShapeError(`linear: x is ${fmtShape(x.shape)}, w is ${fmtShape(w.shape)}; w must be [out, in] with in equal to x's last dim`);
    }
    const b = bias ?? undefined;
    if (b !== undefined) checkLinearBias('linear', b, w.shape[0]!, `w is ${fmtShape(w.shape)}`);
    ctx.data = { xShape: x.shape, wShape: w.shape };
    if (ctx.needsGrad(1)) ctx.saved.push(x);
    if (ctx.needsGrad(0)) ctx.saved.push(w);
    const x2 = x.rank === 1 ? reshape(x, [1, x.shape[0]!]) : x; // [..., in]
    const bc = b === undefined || b.isContiguous ? b : contiguous(b);
    const y = runMatmul('linear', x2, transpose(w), bc); // [..., out]
    return x.rank === 1 ? reshape(y, [w.shape[0]!]) : y;
  },
  // dx = dy w, dw = dy^T x (over all rows), dbias = sum of dy over all rows
  backward(ctx, g) {
    const { xShape, wShape } = ctx.data;
    const [O, I] = [wShape[0]!, wShape[1]!];
    const x = ctx.needsGrad(1) ? ctx.saved[0]! : null;
    const w = ctx.needsGrad(0) ? ctx.saved[ctx.saved.length - 1]! : null;
    const rows = g.size / O;
    const g2 = reshape(g, [rows, O]); // [rows, out]
    const dx = w !== null ? reshape(runMatmul('linear backward', g2, w), xShape) : null;
    const dw = x !== null ? runMatmul('linear backward', transpose(g2), reshape(x, [rows, I])) : null;
    const grads: (Tensor | null)[] = [dx, dw];
    if (ctx.inputs.length > 2) grads.push(ctx.needsGrad(2) ? biasGradient('linear', g2) : null);
    return grads;
  },
});

/**
 * input + alpha F.linear(x, w, bias): input [..., out] (the product's shape and x's dtype, read contiguous: an
 * input of other strides, such as a transposed view, is copied first) plus alpha times
 * x [..., in] times w [out, in] read transposed in place, plus bias [out] where given. The f32 sums, the
 * bias, alpha and the input meet in f32 and are rounded once to x's dtype in the product's epilogue, as
 * torch.addmm(input, x, w.T, alpha=alpha) rounds on CUDA (cuBLAS's gemm with beta = 1), where
 * add(input, mul(linear(x, w, bias), alpha)) takes two more dispatches and rounds up to three times in f16.
 * In f32 with alpha = 1 the result is add(input, linear(x, w, bias)) bit for bit. Gradients: dinput = dy,
 * dx = alpha dy w, dw = alpha dy^T x, dbias = alpha dy summed over every dim but the last.
 * @example linearAdd(x, h, wo) // the residual x [B, T, C] plus h [B, T, C] wo^T in one dispatch
 * @example linearAdd(y, h, loraB, null, scaling) // y + scaling (h B^T), LoRA's update added to the base output
 */
export const linearAdd = defineOp({
  name: 'linearAdd',
  tensors: ['input', 'x', 'w', 'bias?'],
  // Each product's gradient needs only the other operand: x is kept when w needs a gradient, w when x does.
  forward(
    ctx: OpContext<Tensor[], { xShape: readonly number[]; wShape: readonly number[]; alpha: number }>,
    input: Tensor,
    x: Tensor,
    w: Tensor,
    bias?: Tensor | null,
    alpha = 1,
  ) {
    if (x.rank === 0 || w.rank !== 2 || x.shape[x.rank - 1] !== w.shape[1]) {
      throw new ShapeError(`linearAdd: x is ${fmtShape(x.shape)}, w is ${fmtShape(w.shape)}; w must be [out, in] with in equal to x's last dim`);
    }
    const outShape = [...x.shape.slice(0, -1), w.shape[0]!];
    if (!sameShape(input.shape, outShape)) {
      throw new ShapeError(`linearAdd: input is ${fmtShape(input.shape)}, x is ${fmtShape(x.shape)}, w is ${fmtShape(w.shape)}; input must be the product's shape ${fmtShape(outShape)} (use add for a broadcast)`);
    }
    if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new TypeError(`linearAdd: alpha is ${String(alpha)}; expected a finite number`);
    const b = bias ?? undefined;
    if (b !== undefined) checkLinearBias('linearAdd', b, w.shape[0]!, `w is ${fmtShape(w.shape)}`);
    ctx.data = { xShape: x.shape, wShape: w.shape, alpha };
    if (ctx.needsGrad(2)) ctx.saved.push(x);
    if (ctx.needsGrad(1)) ctx.saved.push(w);
    const x2 = x.rank === 1 ? reshape(x, [1, x.shape[0]!]) : x; // [..., in]
    const ic = input.isContiguous ? input : contiguous(input);
    const i2 = x.rank === 1 ? reshape(ic, [1, w.shape[0]!]) : ic; // [..., out]
    const bc = b === undefined || b.isContiguous ? b : contiguous(b);
    const y = runMatmul('linearAdd', x2, transpose(w), bc, { tensor: i2, alpha }); // [..., out]
    return x.rank === 1 ? reshape(y, [w.shape[0]!]) : y;
  },
  // dinput = dy; with g = alpha dy: dx = g w, dw = g^T x (over all rows), dbias = sum of g over all rows
  backward(ctx, dy) {
    const { xShape, wShape, alpha } = ctx.data;
    const [O, I] = [wShape[0]!, wShape[1]!];
    const x = ctx.needsGrad(2) ? ctx.saved[0]! : null;
    const w = ctx.needsGrad(1) ? ctx.saved[ctx.saved.length - 1]! : null;
    const needsScaled = x !== null || w !== null || (ctx.inputs.length > 3 && ctx.needsGrad(3));
    const g = !needsScaled || alpha === 1 ? dy : mul(dy, alpha);
    const g2 = reshape(g, [g.size / O, O]); // [rows, out]
    const dx = w !== null ? reshape(runMatmul('linearAdd backward', g2, w), xShape) : null;
    const dw = x !== null ? runMatmul('linearAdd backward', transpose(g2), reshape(x, [g2.shape[0]!, I])) : null;
    const grads: (Tensor | null)[] = [ctx.needsGrad(0) ? dy : null, dx, dw];
    if (ctx.inputs.length > 3) grads.push(ctx.needsGrad(3) ? biasGradient('linearAdd', g2) : null);
    return grads;
  },
});

/**
 * torch.addmm(input, mat1, mat2, beta=1, alpha=alpha): input + alpha (mat1 mat2), mat1 [..., M, K] and mat2
 * [K, N], rounded once in the product's epilogue (linearAdd) when input has the product's shape [..., M, N];
 * an input that broadcasts to it is added by a separate add (two roundings in f16).
 * @example addmm(residual, h, transpose(wo)) // residual + h wo^T
 */
export function addmm(input: Tensor, mat1: Tensor, mat2: Tensor, options: { alpha?: number } = {}): Tensor {
  const alpha = options.alpha ?? 1;
  if (mat1.rank < 1 || mat2.rank !== 2) {
    throw new ShapeError(`addmm: mat1 is ${fmtShape(mat1.shape)}, mat2 is ${fmtShape(mat2.shape)}; mat2 must be [K, N] (batched mat2: add(input, mul(matmul(mat1, mat2), alpha)))`);
  }
  const outShape = [...mat1.shape.slice(0, -1), mat2.shape[1]!];
  if (sameShape(input.shape, outShape)) return linearAdd(input, mat1, transpose(mat2), null, alpha);
  const product = matmul(mat1, mat2);
  return add(input, alpha === 1 ? product : mul(product, alpha));
}

/** Checks a linear product's bias: [out], one value per output (`weight` describes the weight's shape). */
export function checkLinearBias(op: string, bias: Tensor, out: number, weight: string): void {
  if (bias.rank !== 1 || bias.shape[0] !== out) {
    throw new ShapeError(`${op}: the bias is ${fmtShape(bias.shape)}, ${weight}; the bias must be [${out}], one value per output`);
  }
}

/** The gradient of a linear product's bias: dy [rows, out] summed over its rows. */
export function biasGradient(op: string, g2: Tensor): Tensor {
  return sumToShape(op, g2, [g2.shape[1]!]);
}
