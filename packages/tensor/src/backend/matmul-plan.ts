// Matmul planning: a product described by buffers and strides, and which kernel variant runs it
// under a choice (whether an operand is first copied to rows, or b packed into column panels).
import { itemSize, numel, type DType } from '../tensor.js';
import { SGMAT_BK, type MatmulChoice, type MatmulVariant } from '../matmul-choice.js';
import { SGMAT_DIRECT_ALIGN } from '../kernelgen/matmul.js';

/** One operand as the kernels see it: buffer, element offset, strides of its matrix and batch dims. */
export interface Operand {
  buffer: GPUBuffer;
  offset: number;
  /** Stride between rows (a: m, b: k) and between columns (a: k, b: n). */
  rowStride: number;
  colStride: number;
  batchStrides: number[];
}

/**
 * A product ready to encode: [batch] x [M, K] x [K, N] (+ bias [N]) -> contiguous [batch, M, N], or
 * addend + alpha (product + bias) where it has an addend (torch.addmm with beta = 1).
 */
export interface Problem {
  dtype: DType;
  M: number;
  N: number;
  K: number;
  batchShape: number[];
  a: Operand;
  b: Operand;
  c: GPUBuffer;
  /** A bias [N] added to every row in f32 before c is rounded (F.linear's addmm): its buffer and element offset (contiguous). */
  bias?: { buffer: GPUBuffer; offset: number };
  /**
   * An addend of c's shape and layout (contiguous from element `offset`), added in f32 to alpha times the
   * biased sum before c is rounded once (include/matmul_addend.wgsl).
   */
  addend?: { buffer: GPUBuffer; offset: number; alpha: number };
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
  /** Slices of k computed by separate workgroups into f32 partial products, then summed (1: not split). */
  splitK: number;
}

/** Copying an operand costs about 16 / (other dimension) of the product's time: copy when that is small. */
const COPY_MIN = 64;
/**
 * Packing b into panels reads and writes K x N once while v3 reads b ceil(M / rows) times with a stride of
 * N per k: pack when b exceeds PACK_MIN_BYTES (past the CPU adapters' caches) and M is at least PACK_MIN_M.
 */
const PACK_MIN_BYTES = 8 << 20;
const PACK_MIN_M = 64;

const aligned = (...xs: number[]) => xs.every((x) => x % 4 === 0);

/** a read as vec4 rows along k (v3, matvec). */
function aRowsOk(p: Problem): boolean {
  return p.a.colStride === 1 && aligned(p.K, p.a.offset, p.M === 1 ? 0 : p.a.rowStride, ...p.a.batchStrides);
}

/** Elements in one 16-byte chunk of the wide matrix-vector kernel. */
export function chunkElements(p: Problem): number {
  return 16 / itemSize[p.dtype];
}

/** Whether the wide matrix-vector kernel can read a and b (stored [N, K]) in 16-byte chunks. */
function wideAligned(p: Problem): boolean {
  const e = chunkElements(p);
  return [p.K, p.a.offset, p.b.offset, p.b.colStride, ...p.a.batchStrides, ...p.b.batchStrides].every((x) => x % e === 0);
}

/** b read as vec4 rows along n (false), stored transposed as vec4 rows along k (true), or neither (null). */
function bLayout(p: Problem): boolean | null {
  if (!aligned(p.N, p.K, p.b.offset, ...p.b.batchStrides)) return null;
  if (p.b.colStride === 1 && aligned(p.b.rowStride)) return false;
  if (p.b.rowStride === 1 && aligned(p.b.colStride)) return true;
  return null;
}

/** The kernel a product uses under a choice. */
export function plan(p: Problem, choice: MatmulChoice, maxBinding: number): MatmulPlan {
  const bt = bLayout(p);
  if (p.M === 1 && choice.decode && aRowsOk(p) && bt !== null) {
    // The lanes-along-k kernel reads rows of a weight stored [N, K]; b along n is already coalesced.
    let kernel: MatmulVariant = bt ? choice.decode : { kernel: 'matvec' as const };
    if (kernel.kernel === 'matvec' && kernel.wide && !wideAligned(p)) kernel = { kernel: 'matvec', sg: kernel.sg };
    return { kernel, transposedB: bt, copyA: false, copyB: false, packB: false, splitK: 1 };
  }
  const main = p.dtype === 'f16' && choice.f16 ? choice.f16 : choice.main;
  if (main.kernel === 'sgmat' && p.dtype !== 'f16') return tiled(p, choice.fallback, choice, maxBinding);
  if (main.kernel !== 'v3' && main.kernel !== 'matvec') return tiled(p, main, choice, maxBinding);
  if (main.kernel === 'v3' && aligned(p.N, p.K)) {
    const copyA = !aRowsOk(p);
    const packB = packable(p, main, maxBinding);
    const copyB = bt === null && !packB;
    if ((!copyA || p.N >= COPY_MIN) && (!copyB || p.M >= COPY_MIN)) {
      return { kernel: main, transposedB: copyB || packB ? false : bt!, copyA, copyB, packB, splitK: 1 };
    }
  }
  return tiled(p, choice.fallback, choice, maxBinding);
}

/** A product no slice of k may be shorter than: below it the second pass costs more than it saves. */
const MIN_SPLIT_K = 256;
/** Products with more output tiles than this fill a GPU on their own and are never split. */
const MAX_SPLIT_TILES = 64;
/** The most bytes of f32 partial products a split may allocate. */
const MAX_PARTIAL_BYTES = 16 << 20;

/** A plan for a kernel that tiles c (v1, v2, v4, sgmat), split along k where the choice asks for it. */
function tiled(p: Problem, kernel: MatmulVariant, choice: MatmulChoice, maxBinding: number): MatmulPlan {
  const splitK = splitFor(p, kernel, choice.splitK ?? 0, maxBinding);
  if (kernel.kernel === 'sgmat' && kernel.direct && !directAligned(p, kernel, splitK)) {
    const { direct: _, ...staged } = kernel;
    kernel = staged;
  }
  return { kernel, transposedB: false, copyA: false, copyB: false, packB: false, splitK };
}

/**
 * Whether the direct subgroup-matrix kernel can read a product: whole tiles (M, N) and k steps (each
 * slice of k), a and b each contiguous along one dimension, and every offset and stride a multiple of
 * SGMAT_DIRECT_ALIGN elements, so that every matrix it loads lies inside its operand on 16-byte rows.
 */
function directAligned(p: Problem, v: Extract<MatmulVariant, { kernel: 'sgmat' }>, splits: number): boolean {
  const k = p.K / splits;
  if (p.M % v.tm !== 0 || p.N % v.tn !== 0 || k % SGMAT_BK !== 0) return false;
  const unit = (o: Operand) => (o.colStride === 1 ? o.rowStride : o.rowStride === 1 ? o.colStride : -1);
  const [sa, sb] = [unit(p.a), unit(p.b)];
  return sa > 0 && sb > 0 && [sa, sb, p.a.offset, p.b.offset, k, ...p.a.batchStrides, ...p.b.batchStrides].every((x) => x % SGMAT_DIRECT_ALIGN === 0);
}

/** The output tile of a tiling kernel, [rows, columns]. */
function tileOf(v: MatmulVariant): [number, number] {
  if (v.kernel === 'sgmat') return [v.tm, v.tn];
  if (v.kernel === 'v2' || v.kernel === 'v4') return [v.tile, v.tile];
  return [16, 16];
}

/**
 * How many slices of k a product is split into to fill about `target` workgroups: 1 unless it has at
 * most MAX_SPLIT_TILES output tiles, a free batch dimension for the slices, and K long enough that each
 * slice keeps MIN_SPLIT_K (powers of two that divide K).
 */
export function splitFor(p: Pick<Problem, 'M' | 'K' | 'N' | 'batchShape'>, v: MatmulVariant, target: number, maxBinding: number): number {
  const [tm, tn] = tileOf(v);
  const tiles = Math.ceil(p.M / tm) * Math.ceil(p.N / tn) * numel(p.batchShape);
  if (!(target > 0) || tiles > MAX_SPLIT_TILES || p.batchShape.length >= 4) return 1;
  const partialBytes = (s: number) => s * numel(p.batchShape) * p.M * p.N * 4;
  let s = 1;
  while (tiles * s * 2 <= target && p.K % (s * 2) === 0 && p.K / (s * 2) >= MIN_SPLIT_K && partialBytes(s * 2) <= Math.min(maxBinding, MAX_PARTIAL_BYTES)) s *= 2;
  return s;
}

/** The largest output tile of any tiling kernel (v4, sgmat): with it a product has the fewest tiles. */
const LARGEST_TILE = 128;

/**
 * The most bytes of f32 partial products a split along k of a [batch] x [M, K] x [K, N] product may
 * allocate on an adapter with this binding limit, whatever kernel and target the search chose (0 when
 * no split can happen). The partials are released as soon as the product's sum is encoded.
 */
export function splitPartialBound(M: number, K: number, N: number, batch: number, maxBinding: number): number {
  const tiles = Math.ceil(M / LARGEST_TILE) * Math.ceil(N / LARGEST_TILE) * batch;
  if (tiles > MAX_SPLIT_TILES) return 0;
  const partialBytes = (s: number) => s * batch * M * N * 4;
  let s = 1;
  while (K % (s * 2) === 0 && K / (s * 2) >= MIN_SPLIT_K && partialBytes(s * 2) <= Math.min(maxBinding, MAX_PARTIAL_BYTES)) s *= 2;
  return s > 1 ? partialBytes(s) : 0;
}

/** Bytes of b packed into v3 panels (4 sg columns each, zero-padded). */
export function packedBytes(p: Problem, sg: number): number {
  return Math.ceil(p.N / (4 * sg)) * 4 * sg * p.K * itemSize[p.dtype];
}

/** Whether v3 reads b packed into panels: one b shared by the batch, and `pack` forces it or b and M are large. */
function packable(p: Problem, v: Extract<MatmulVariant, { kernel: 'v3' }>, maxBinding: number): boolean {
  if (numel(p.batchShape) !== 1 || packedBytes(p, v.sg) > maxBinding) return false;
  if (v.pack !== undefined) return v.pack;
  return p.K * p.N * itemSize[p.dtype] >= PACK_MIN_BYTES && p.M >= PACK_MIN_M;
}
