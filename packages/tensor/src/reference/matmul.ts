// CPU reference of the batched matrix product [..., M, K] x [..., K, N] (+ bias [N]) -> [..., M, N] with
// broadcast batch dimensions, and its gradients (the bias's: g summed over every dim but the last).
import { refBroadcastShape, refSumToShape } from './elementwise.js';
import { refZeros, unravel, type RefTensor } from './ref-tensor.js';

/** Offset of matrix `batchIdx` (a multi-index of the broadcast batch shape) in a tensor of `shape`. */
function matrixOffset(batchIdx: readonly number[], shape: readonly number[]): number {
  const batchRank = shape.length - 2;
  const lead = batchIdx.length - batchRank;
  let flat = 0;
  for (let d = 0; d < batchRank; d++) {
    const n = shape[d]!;
    flat = flat * n + (n === 1 ? 0 : batchIdx[lead + d]!);
  }
  return flat * shape[batchRank]! * shape[batchRank + 1]!;
}

/** c[..., m, n] = sum_k a[..., m, k] b[..., k, n] (+ bias[n]), batch dims broadcast. */
export function refMatmul(a: RefTensor, b: RefTensor, bias?: RefTensor): RefTensor {
  const [M, K] = a.shape.slice(-2) as [number, number];
  const [K2, N] = b.shape.slice(-2) as [number, number];
  if (K !== K2) throw new Error(`reference: matmul inner dims ${K} and ${K2} differ`);
  if (bias !== undefined && (bias.shape.length !== 1 || bias.shape[0] !== N)) throw new Error(`reference: matmul bias is [${bias.shape.join(', ')}], expected [${N}]`);
  const batchShape = refBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = refZeros([...batchShape, M, N]);
  const batches = batchShape.reduce((p, d) => p * d, 1);
  for (let bi = 0; bi < batches; bi++) {
    const idx = unravel(bi, batchShape);
    const ao = matrixOffset(idx, a.shape);
    const bo = matrixOffset(idx, b.shape);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[ao + m * K + k]! * b.data[bo + k * N + n]!;
        out.data[bi * M * N + m * N + n] = bias === undefined ? s : s + bias.data[n]!;
      }
    }
  }
  return out;
}

/** Gradients of c = a b: da = g b^T, db = a^T g, each summed over the batch dims it was broadcast along. */
export function refMatmulBackward(a: RefTensor, b: RefTensor, g: RefTensor): [RefTensor, RefTensor] {
  const [M, K] = a.shape.slice(-2) as [number, number];
  const N = b.shape[b.shape.length - 1]!;
  const batchShape = g.shape.slice(0, -2);
  const da = refZeros([...batchShape, M, K]);
  const db = refZeros([...batchShape, K, N]);
  const batches = batchShape.reduce((p, d) => p * d, 1);
  for (let bi = 0; bi < batches; bi++) {
    const idx = unravel(bi, batchShape);
    const ao = matrixOffset(idx, a.shape);
    const bo = matrixOffset(idx, b.shape);
    const go = bi * M * N;
    for (let m = 0; m < M; m++) {
      for (let k = 0; k < K; k++) {
        let s = 0;
        for (let n = 0; n < N; n++) s += g.data[go + m * N + n]! * b.data[bo + k * N + n]!;
        da.data[bi * M * K + m * K + k] = s;
      }
    }
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let m = 0; m < M; m++) s += a.data[ao + m * K + k]! * g.data[go + m * N + n]!;
        db.data[bi * K * N + k * N + n] = s;
      }
    }
  }
  return [refSumToShape(da, a.shape), refSumToShape(db, b.shape)];
}

/** The gradient of a bias [N] added to every row of c [..., N]: g summed over all but its last dim. */
export function refBiasBackward(g: RefTensor): RefTensor {
  const N = g.shape[g.shape.length - 1]!;
  const db = refZeros([N]);
  for (let i = 0; i < g.data.length; i++) db.data[i % N] = db.data[i % N]! + g.data[i]!;
  return db;
}

/**
 * torch.addmm with beta = 1 (and linear's bias): input + alpha (a b + bias), input of the product's shape.
 * Its gradients: dinput = g, and refMatmulBackward / refBiasBackward of alpha g for a, b and the bias.
 */
export function refAddmm(input: RefTensor, a: RefTensor, b: RefTensor, alpha: number, bias?: RefTensor): RefTensor {
  const out = refMatmul(a, b, bias);
  if (input.shape.length !== out.shape.length || input.shape.some((d, i) => d !== out.shape[i])) {
    throw new Error(`reference: addmm input is [${input.shape.join(', ')}], the product [${out.shape.join(', ')}]`);
  }
  for (let i = 0; i < out.data.length; i++) out.data[i] = input.data[i]! + alpha * out.data[i]!;
  return out;
}
