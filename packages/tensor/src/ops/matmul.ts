// Batched matrix product with broadcast batch dimensions. Transposed (or otherwise strided) operands
// are read in place through their strides. The gradient keeps only the operand the other side needs.
// Kernels: v1 (naive, any layout), v2 (workgroup tiles, any layout), v3 (subgroup sharing, vec4 rows:
// a along k, b along n or stored transposed), matvec (M = 1). Which one runs is chosen per adapter
// (tuning.ts); an operand v3 cannot read in place is copied only when the copy is cheap next to the
// product (the other output dimension is at least COPY_MIN), otherwise the fallback variant reads it.
// A large shared b (K x N past the caches) is first packed into column panels for v3 (matmul_pack).
import { getRuntime } from '../backend/context.js';
import type { Runtime } from '../backend/runtime.js';
import { ShapeError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, Params, preprocess } from '../kernels.js';
import { empty, itemSize, numel, Tensor, type DType } from '../tensor.js';
import {
  currentChoice,
  matmulCandidates,
  recordChoice,
  searchInProgress,
  variantName,
  type MatmulChoice,
  type MatmulVariant,
} from '../tuning.js';
import { defineOp } from './define.js';
import { broadcastShapes, checkFloat, checkSameDType, coalesce, runCopy, sumToShape } from './launch.js';
import { transpose } from './views.js';

const MAX_BATCH_RANK = 4;
/** Copying an operand costs about 16 / (other dimension) of the product's time: copy when that is small. */
const COPY_MIN = 64;
/**
 * Packing b into panels reads and writes K x N once while v3 reads b ceil(M / rows) times with a stride of
 * N per k: pack when b exceeds PACK_MIN_BYTES (past the CPU adapters' caches) and M is at least PACK_MIN_M.
 */
const PACK_MIN_BYTES = 8 << 20;
const PACK_MIN_M = 64;

/** One operand as the kernels see it: buffer, element offset, strides of its matrix and batch dims. */
interface Operand {
  buffer: GPUBuffer;
  offset: number;
  /** Stride between rows (a: m, b: k) and between columns (a: k, b: n). */
  rowStride: number;
  colStride: number;
  batchStrides: number[];
}

/** A product ready to encode: [batch] x [M, K] x [K, N] -> contiguous [batch, M, N]. */
interface Problem {
  dtype: DType;
  M: number;
  N: number;
  K: number;
  batchShape: number[];
  a: Operand;
  b: Operand;
  c: GPUBuffer;
}

/** Which kernel runs a product, and whether an operand is first copied to rows. */
export interface MatmulPlan {
  kernel: MatmulVariant;
  /** b is read stored transposed ([N, K] rows) by v3 or matvec. */
  transposedB: boolean;
  copyA: boolean;
  copyB: boolean;
  /** b is first packed into column panels of the v3 workgroup's width (then read by v3 as PACKED). */
  packB: boolean;
}

const aligned = (...xs: number[]) => xs.every((x) => x % 4 === 0);

/** a read as vec4 rows along k (v3, matvec). */
function aRowsOk(p: Problem): boolean {
  return p.a.colStride === 1 && aligned(p.K, p.a.offset, p.M === 1 ? 0 : p.a.rowStride, ...p.a.batchStrides);
}

/** b read as vec4 rows along n (false), stored transposed as vec4 rows along k (true), or neither (null). */
function bLayout(p: Problem): boolean | null {
  if (!aligned(p.N, p.K, p.b.offset, ...p.b.batchStrides)) return null;
  if (p.b.colStride === 1 && aligned(p.b.rowStride)) return false;
  if (p.b.rowStride === 1 && aligned(p.b.colStride)) return true;
  return null;
}

/** The kernel a product will use under a choice (exported for tests through `matmulPlan`). */
function plan(p: Problem, choice: MatmulChoice, maxBinding: number): MatmulPlan {
  const none = { transposedB: false, copyA: false, copyB: false, packB: false };
  const bt = bLayout(p);
  if (p.M === 1 && choice.decode && aRowsOk(p) && bt !== null) return { kernel: { kernel: 'matvec' }, ...none, transposedB: bt };
  const main = choice.main;
  if (main.kernel !== 'v3' && main.kernel !== 'matvec') return { kernel: main, ...none };
  if (main.kernel === 'v3' && aligned(p.N, p.K)) {
    const copyA = !aRowsOk(p);
    const packB = packable(p, main, maxBinding);
    const copyB = bt === null && !packB;
    if ((!copyA || p.N >= COPY_MIN) && (!copyB || p.M >= COPY_MIN)) {
      return { kernel: main, transposedB: copyB || packB ? false : bt!, copyA, copyB, packB };
    }
  }
  return { kernel: choice.fallback, ...none };
}

/** Bytes of b packed into v3 panels (4 sg columns each, zero-padded). */
function packedBytes(p: Problem, sg: number): number {
  return Math.ceil(p.N / (4 * sg)) * 4 * sg * p.K * itemSize[p.dtype];
}

/** Whether v3 reads b packed into panels: one b shared by the batch, and `pack` forces it or b and M are large. */
function packable(p: Problem, v: Extract<MatmulVariant, { kernel: 'v3' }>, maxBinding: number): boolean {
  if (numel(p.batchShape) !== 1 || packedBytes(p, v.sg) > maxBinding) return false;
  if (v.pack !== undefined) return v.pack;
  return p.K * p.N * itemSize[p.dtype] >= PACK_MIN_BYTES && p.M >= PACK_MIN_M;
}

/** Encodes the packing of b into v3 panels; returns the packed buffer (release it after the product). */
function encodePack(rt: Runtime, p: Problem, sg: number, label: string): GPUBuffer {
  const bytes = packedBytes(p, sg);
  const total = bytes / (4 * itemSize[p.dtype]);
  const out = rt.acquire(Math.max(16, bytes));
  const kernel = compileKernel(rt, 'matmul_pack', { T: p.dtype, SG: String(sg) });
  const params = new Params().u32(p.N, p.K, p.b.offset, p.b.rowStride, p.b.colStride, total).build();
  rt.dispatch({ kernel, params, buffers: [p.b.buffer, out], workgroups: grid1d(total, 64), label: `${label} (pack b)` });
  return out;
}

/** The v3 sharing step, unrolled: subgroupBroadcast needs constant lanes, accumulators constant indices. */
export function shareStep(sg: number, rows: number): string {
  const lines: string[] = [];
  for (let i = 0; i < rows / sg; i++) {
    lines.push(`    {`, `      let av = vec4<f32>(a[a_rows[${i}] + k4]);`);
    for (let j = 0; j < sg; j++) {
      const r = i * sg + j;
      lines.push(
        `      { let x = subgroupBroadcast(av, ${j}u); acc[${r}] = fma(vec4<f32>(x.w), b3, fma(vec4<f32>(x.z), b2, fma(vec4<f32>(x.y), b1, fma(vec4<f32>(x.x), b0, acc[${r}])))); }`,
      );
    }
    lines.push(`    }`);
  }
  return lines.join('\n');
}

const MATVEC_WG = 64;

/** Encodes one product with a given plan. */
function encode(rt: Runtime, p: Problem, pl: MatmulPlan, label: string): void {
  const batch = numel(p.batchShape);
  const rank = p.batchShape.length;
  const v = pl.kernel;
  if (v.kernel === 'v1' || v.kernel === 'v2') {
    const kernel = v.kernel === 'v1' ? compileKernel(rt, 'matmul', { T: p.dtype }) : compileKernel(rt, 'matmul.v2', { T: p.dtype, TILE: String(v.tile) });
    const tile = v.kernel === 'v1' ? 16 : v.tile;
    const params = new Params()
      .u32(p.M, p.N, p.K, rank, p.a.offset, p.b.offset)
      .u32(p.a.rowStride, p.a.colStride, p.b.rowStride, p.b.colStride)
      .u32Array(p.batchShape, 4)
      .u32Array(p.a.batchStrides, 4)
      .u32Array(p.b.batchStrides, 4)
      .build();
    rt.dispatch({ kernel, params, buffers: [p.a.buffer, p.b.buffer, p.c], workgroups: [Math.ceil(p.N / tile), Math.ceil(p.M / tile), batch], label });
    return;
  }
  const q = (x: number) => x / 4;
  const bRow = pl.transposedB ? p.b.colStride : p.b.rowStride;
  if (v.kernel === 'matvec') {
    const kernel = compileKernel(rt, 'matvec', { T: p.dtype, WG: String(MATVEC_WG), BT: String(pl.transposedB) });
    const params = new Params()
      .u32(p.N, p.K, q(p.a.offset), q(p.b.offset), q(bRow), rank)
      .u32Array(p.batchShape, 4)
      .u32Array(p.a.batchStrides.map(q), 4)
      .u32Array(p.b.batchStrides.map(q), 4)
      .build();
    rt.dispatch({ kernel, params, buffers: [p.a.buffer, p.b.buffer, p.c], workgroups: [Math.ceil(p.N / 4 / MATVEC_WG), 1, batch], label });
    return;
  }
  const defines = { T: p.dtype, SG: String(v.sg), TM: String(v.rows), BT: String(pl.transposedB), PACKED: String(pl.packB) };
  const key = `matmul.v3(BT=${defines.BT},PACKED=${defines.PACKED},SG=${defines.SG},T=${defines.T},TM=${defines.TM})`;
  const kernel = rt.kernel(key, preprocess('matmul.v3', { ...defines, SHARE: shareStep(v.sg, v.rows) }), key);
  const packed = pl.packB ? encodePack(rt, p, v.sg, label) : null;
  const bOffset = packed ? 0 : q(p.b.offset);
  const bBatch = packed ? [0] : p.b.batchStrides.map(q);
  const params = new Params()
    .u32(p.M, p.N, p.K, rank, q(p.a.offset), bOffset, q(p.a.rowStride), q(bRow))
    .u32Array(p.batchShape, 4)
    .u32Array(p.a.batchStrides.map(q), 4)
    .u32Array(bBatch, 4)
    .build();
  rt.dispatch({
    kernel,
    params,
    buffers: [p.a.buffer, packed ?? p.b.buffer, p.c],
    workgroups: packed ? [Math.ceil(p.M / v.rows), Math.ceil(p.N / (4 * v.sg)), batch] : [Math.ceil(p.N / (4 * v.sg)), Math.ceil(p.M / v.rows), batch],
    label,
  });
  if (packed) rt.release(packed);
}

interface Prepared {
  problem: Problem;
  out: Tensor;
}

/** Checks shapes, allocates the output and describes the product; folds a shared b's batch into M. */
function prepare(op: string, a: Tensor, b: Tensor): Prepared {
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
  const batchStrides = (t: Tensor) => {
    const s = new Array<number>(batchShape.length).fill(0);
    const lead = batchShape.length - (t.rank - 2);
    for (let i = 0; i < t.rank - 2; i++) s[lead + i] = t.shape[i] === 1 ? 0 : t.strides[i]!;
    return s;
  };
  const merged = coalesce(batchShape, [batchStrides(a), batchStrides(b)]);
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

/** A contiguous copy of an operand. */
function copyOperand(op: string, t: Tensor): Tensor {
  const y = empty(t.shape, t.dtype);
  runCopy(op, t, y);
  return y;
}

/** Runs a [..., M, K] x [..., K, N] product of any strides with the adapter's chosen kernels. */
export function runMatmul(op: string, a: Tensor, b: Tensor): Tensor {
  const rt = getRuntime();
  const { problem, out } = prepare(op, a, b);
  if (out.size === 0) return out;
  const pl = plan(problem, choiceFor(rt), rt.info.maxStorageBufferBindingSize);
  if (!pl.copyA && !pl.copyB) {
    encode(rt, problem, pl, op);
    return out;
  }
  // Copies keep the operands' own batch shapes, so the product is re-described from the copies.
  const ac = pl.copyA ? copyOperand(op, a) : a;
  const bc = pl.copyB ? copyOperand(op, b) : b;
  const { problem: p2, out: out2 } = prepare(op, ac, bc);
  out2.dispose('temporary of matmul');
  encode(rt, { ...p2, c: problem.c }, plan(p2, choiceFor(rt), rt.info.maxStorageBufferBindingSize), op);
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

function choiceFor(rt: Runtime): MatmulChoice {
  return currentChoice(rt.info, () => search(rt));
}

/**
 * Runs the per-adapter search now (it otherwise starts in the background at the first product) and
 * returns the winner; the result is cached (disk in Node, memory in browsers) under the adapter's name.
 */
export async function tuneMatmul(): Promise<MatmulChoice> {
  const rt = getRuntime();
  const running = searchInProgress();
  if (running) return running;
  return search(rt);
}

/**
 * The matmul choice for this adapter: the cached one when a search ran before (on disk in Node),
 * else the result of a search run now. Call it after initWebGPU() so that no training step waits on
 * (or shares the GPU with) the first-use search.
 */
export async function readyMatmul(): Promise<MatmulChoice> {
  const rt = getRuntime();
  const choice = choiceFor(rt);
  return (await searchInProgress()) ?? choice;
}

/** The representative shape of the search: [256, 512] x [512, 512], f32, row-major operands. */
const SEARCH_M = 256;
const SEARCH_NK = 512;

/**
 * Times every candidate on the representative shape (after one warm-up run that compiles it) and keeps
 * the fastest; also warms the winner's f16 and transposed-b variants so no later step compiles them.
 */
async function search(rt: Runtime): Promise<MatmulChoice> {
  const [M, N, K] = [SEARCH_M, SEARCH_NK, SEARCH_NK];
  const bytes = (n: number, dtype: DType) => Math.max(16, n * itemSize[dtype]);
  const buffers = [rt.acquire(bytes(M * K, 'f32')), rt.acquire(bytes(K * N, 'f32')), rt.acquire(bytes(M * N, 'f32'))];
  const ones = new Float32Array(Math.max(M * K, K * N)).fill(0.5);
  rt.write(buffers[0]!, 0, ones.subarray(0, M * K));
  rt.write(buffers[1]!, 0, ones.subarray(0, K * N));
  const problem = (v: MatmulVariant, bt: boolean, dtype: DType = 'f32'): [Problem, MatmulPlan] => [
    {
      dtype,
      M,
      N,
      K,
      batchShape: [1],
      a: { buffer: buffers[0]!, offset: 0, rowStride: K, colStride: 1, batchStrides: [0] },
      b: bt
        ? { buffer: buffers[1]!, offset: 0, rowStride: 1, colStride: K, batchStrides: [0] }
        : { buffer: buffers[1]!, offset: 0, rowStride: N, colStride: 1, batchStrides: [0] },
      c: buffers[2]!,
    },
    { kernel: v, transposedB: bt && v.kernel === 'v3', copyA: false, copyB: false, packB: false },
  ];
  const timings: Record<string, number> = {};
  try {
    let best: { v: MatmulVariant; ms: number } | null = null;
    let bestGeneral: { v: MatmulVariant; ms: number } | null = null;
    for (const v of matmulCandidates(rt.info)) {
      const [p, pl] = problem(v, false);
      encode(rt, p, pl, 'matmul tuning');
      await rt.sync();
      let ms = Infinity;
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        encode(rt, p, pl, 'matmul tuning');
        await rt.sync();
        ms = Math.min(ms, performance.now() - t0);
      }
      timings[variantName(v)] = ms;
      if (!best || ms < best.ms) best = { v, ms };
      if (v.kernel !== 'v3' && (!bestGeneral || ms < bestGeneral.ms)) bestGeneral = { v, ms };
    }
    const choice: MatmulChoice = { main: best!.v, fallback: bestGeneral!.v, decode: true };
    await warm(rt, choice, problem);
    recordChoice(rt.info, choice, timings);
    return choice;
  } finally {
    for (const buf of buffers) rt.release(buf);
  }
}

/** Compiles (by running once on the search buffers) the kernels a training step may need. */
async function warm(rt: Runtime, choice: MatmulChoice, problem: (v: MatmulVariant, bt: boolean, dtype?: DType) => [Problem, MatmulPlan]): Promise<void> {
  const dtypes: DType[] = rt.info.features.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
  for (const dtype of dtypes) {
    for (const v of [choice.main, choice.fallback]) {
      for (const bt of v.kernel === 'v3' ? [false, true] : [false]) {
        const [p, pl] = problem(v, bt, dtype);
        encode(rt, p, pl, 'matmul warm-up');
      }
    }
    for (const bt of [false, true]) {
      const [p] = problem({ kernel: 'matvec' }, bt, dtype);
      encode(rt, { ...p, M: 1 }, { kernel: { kernel: 'matvec' }, transposedB: bt, copyA: false, copyB: false, packB: false }, 'matmul warm-up');
    }
  }
  await rt.sync();
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
