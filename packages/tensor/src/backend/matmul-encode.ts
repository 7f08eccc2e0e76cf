// Matmul encoding: the WGSL modules a planned product needs (keyed by variant and defines), their
// uniform blocks and grids, and the dispatches (with b first packed into panels where planned).
import { grid1d, packParams, kernelSource, variantKey, type Defines } from '../kernels.js';
import type { WgslName } from '../kernels.generated.js';
import { sgmatDefines, sgmatDirectDefines, shareStep, v4Defines, type StagingLayout } from '../kernelgen/matmul.js';
import { SGMAT_BK, type MatmulVariant } from '../matmul-choice.js';
import { itemSize, numel } from '../tensor.js';
import type { CompiledKernel, Runtime } from './runtime.js';
import { chunkElements, packedBytes, type MatmulPlan, type Problem } from './matmul-plan.js';

/** A module a product needs: the cache key of its pipeline and its complete WGSL. */
export interface KernelSource {
  key: string;
  source: string;
}

/** A candidate kernel whose WGSL is rewritten before compiling (to check that the search refuses bad kernels). */
export interface KernelRewrite {
  name: string;
  rewrite: (wgsl: string) => string;
}

const MATVEC_WG = 64;
/** Rows per subgroup and 16-byte loads per row per pass of the wide matrix-vector kernel. */
const WIDE_ROWS = 2;
const WIDE_UNROLL = 4;

/** The chunk type of the wide matrix-vector kernel and its dot product: 8 f16 in a vec4<u32>, or a vec4<f32>. */
function wideChunk(T: string): { CH: string; CHUNK_DOT: string } {
  if (T !== 'f16') return { CH: 'vec4<f32>', CHUNK_DOT: '  return dot(xc, wc);' };
  const pair = (c: string) => `dot(unpack2x16float(xc.${c}), unpack2x16float(wc.${c}))`;
  return { CH: 'vec4<u32>', CHUNK_DOT: `  return ${['x', 'y', 'z', 'w'].map(pair).join(' + ')};` };
}
const aligned = (...xs: number[]) => xs.every((x) => x % 4 === 0);

/**
 * How the staging kernels (v4, sgmat) read a product's operands: each along its contiguous dimension (a
 * along k or m, b along n or k; either when neither is contiguous), as vec4s when both operands' runs,
 * offsets and strides are multiples of 4 elements.
 */
export function stagingLayout(p: Problem): StagingLayout {
  const a = p.a.colStride === 1 || p.M === 1 || p.a.rowStride !== 1 ? 'k' : 'm';
  const b = p.b.colStride === 1 || p.K === 1 || p.b.rowStride !== 1 ? 'n' : 'k';
  const aVec = a === 'k' ? p.a.colStride === 1 && aligned(p.K, p.a.rowStride) : aligned(p.M, p.a.colStride);
  const bVec = b === 'n' ? p.b.colStride === 1 && aligned(p.N, p.b.rowStride) : aligned(p.K, p.b.colStride);
  const vec = aVec && bVec && aligned(p.a.offset, p.b.offset, ...p.a.batchStrides, ...p.b.batchStrides) ? 4 : 1;
  return { a, b, vec };
}

/** A module keyed by `defines`; `extra` (generated code the key implies) is made only the first time. */
function module(name: WgslName, defines: Defines, extra?: () => Defines): KernelSource {
  const key = variantKey(name, defines);
  return { key, source: kernelSource(name, extra === undefined ? defines : () => ({ ...defines, ...extra() }), key) };
}

/**
 * The modules a planned product runs, in dispatch order (the packing of b first, where planned; the sum
 * of the slices last, where split along k).
 */
export function matmulKernels(p: Problem, pl: MatmulPlan, custom?: KernelRewrite): KernelSource[] {
  const v = pl.kernel;
  const T = p.dtype;
  // The tiling kernels write c as T, or as f32 partial products when split (their layout read from the slices).
  const TC = pl.splitK > 1 ? 'f32' : T;
  // The bias is added where c is rounded: by the product's kernel, or by the sum of the slices of k.
  const biased = String(p.bias !== undefined);
  const BIAS = pl.splitK > 1 ? 'false' : biased;
  const added = String(p.addend !== undefined);
  const ADD = pl.splitK > 1 ? 'false' : added;
  if (pl.splitK > 1) p = sliceK(p, pl.splitK, p.c);
  const out: KernelSource[] = [];
  if (pl.packB && v.kernel === 'v3') out.push(module('matmul_pack', { T, SG: String(v.sg) }));
  switch (v.kernel) {
    case 'v1':
      out.push(module('matmul', { T, TC, BIAS, ADD }));
      break;
    case 'v2':
      out.push(module('matmul.v2', { T, TC, BIAS, ADD, TILE: String(v.tile) }));
      break;
    case 'v3': {
      const d = { T, BIAS, ADD, SG: String(v.sg), TM: String(v.rows), BT: String(pl.transposedB), PACKED: String(pl.packB) };
      out.push(module('matmul.v3', d, () => ({ SHARE: shareStep(v.sg, v.rows) })));
      break;
    }
    case 'v4': {
      const layout = stagingLayout(p);
      out.push(module('matmul.v4', { T, TC, BIAS, ADD, TILE: String(v.tile), LAYOUT: `${layout.a}${layout.b}${layout.vec}` }, () => v4Defines(v.tile, layout)));
      break;
    }
    case 'sgmat': {
      const layout = stagingLayout(p);
      const shape = { sm: v.m, sn: v.n, sk: v.k, tm: v.tm, tn: v.tn, wm: v.wm, wn: v.wn, bk: SGMAT_BK };
      const d = { T, TC, BIAS, ADD, SM: String(v.m), SN: String(v.n), SK: String(v.k), SG: String(v.sg), TM: String(v.tm), TN: String(v.tn), WM: String(v.wm), WN: String(v.wn) };
      if (v.direct) out.push(module('matmul_sgmat_direct', { ...d, LAYOUT: `${layout.a}${layout.b}` }, () => sgmatDirectDefines(shape, v.sg, layout)));
      else out.push(module('matmul_sgmat', { ...d, LAYOUT: `${layout.a}${layout.b}${layout.vec}` }, () => sgmatDefines(shape, v.sg, layout)));
      break;
    }
    case 'matvec':
      if (v.wide) out.push(module('matvec.v3', { T, BIAS, ADD, SG: String(v.sg), ROWS: String(WIDE_ROWS), U: String(WIDE_UNROLL), G: String(v.groups ?? 1) }, () => wideChunk(T)));
      else out.push(v.sg === undefined ? module('matvec', { T, BIAS, ADD, WG: String(MATVEC_WG), BT: String(pl.transposedB) }) : module('matvec.v2', { T, BIAS, ADD, SG: String(v.sg) }));
      break;
  }
  if (custom) {
    const last = out[out.length - 1]!;
    out[out.length - 1] = { key: `${last.key}#${custom.name}`, source: custom.rewrite(last.source) };
  }
  if (pl.splitK > 1) out.push(module('matmul_split_sum', { T, BIAS: biased, ADD: added }));
  return out;
}

/** Encodes one product with a given plan. */
export function encodeMatmul(rt: Runtime, p: Problem, pl: MatmulPlan, label: string, custom?: KernelRewrite): void {
  const sources = matmulKernels(p, pl, custom);
  const kernels = sources.map((s) => rt.kernel(s.key, s.source, s.key));
  if (pl.splitK > 1 && tiling(pl.kernel)) {
    encodeSplit(rt, pl.kernel, p, pl.splitK, kernels, label);
    return;
  }
  const kernel = kernels[kernels.length - 1]!;
  const batch = numel(p.batchShape);
  const rank = p.batchShape.length;
  const v = pl.kernel;
  if (tiling(v)) {
    encodeTiled(rt, kernel, v, p, label);
    return;
  }
  const bRow = pl.transposedB ? p.b.colStride : p.b.rowStride;
  if (v.kernel === 'matvec') {
    // The wide kernel counts 16-byte chunks (K included); the others vec4s (K in elements).
    const e = v.wide ? chunkElements(p) : 4;
    const params = packParams('matvec', {
      N: p.N,
      K: v.wide ? p.K / e : p.K,
      x_offset: p.a.offset / e,
      w_offset: p.b.offset / e,
      w_row: bRow / e,
      batch_rank: rank,
      bias_offset: p.bias?.offset ?? 0,
      addend_offset: p.addend?.offset ?? 0,
      alpha: p.addend?.alpha ?? 1,
      batch_shape: p.batchShape,
      x_batch_strides: dividedBy(p.a.batchStrides, e),
      w_batch_strides: dividedBy(p.b.batchStrides, e),
    });
    const rows = v.wide ? WIDE_ROWS * (v.groups ?? 1) : 4;
    const groups: readonly [number, number] =
      v.sg === undefined ? [Math.ceil(p.N / 4 / MATVEC_WG), 1] : grid1d(Math.ceil(p.N / rows), 1, rt.info.maxComputeWorkgroupsPerDimension);
    rt.dispatch({ kernel, params, buffers: [p.a.buffer, p.b.buffer, p.c, biasBuffer(p), addendBuffer(p)], workgroups: [groups[0], groups[1], batch], label });
    return;
  }
  const packed = pl.packB ? encodePack(rt, kernels[0]!, p, v.sg, label) : null;
  const bOffset = packed ? 0 : p.b.offset / 4;
  const bBatch = packed ? [0] : dividedBy(p.b.batchStrides, 4);
  const params = packParams('matmul.v3', {
    M: p.M,
    N: p.N,
    K: p.K,
    batch_rank: rank,
    a_offset: p.a.offset / 4,
    b_offset: bOffset,
    a_sm: p.a.rowStride / 4,
    b_row: packed ? 0 : bRow / 4,
    bias_offset: p.bias?.offset ?? 0,
    addend_offset: p.addend?.offset ?? 0,
    alpha: p.addend?.alpha ?? 1,
    batch_shape: p.batchShape,
    a_batch_strides: dividedBy(p.a.batchStrides, 4),
    b_batch_strides: bBatch,
  });
  rt.dispatch({
    kernel,
    params,
    buffers: [p.a.buffer, packed ?? p.b.buffer, p.c, biasBuffer(p), addendBuffer(p)],
    workgroups: packed ? [Math.ceil(p.M / v.rows), Math.ceil(p.N / (4 * v.sg)), batch] : [Math.ceil(p.N / (4 * v.sg)), Math.ceil(p.M / v.rows), batch],
    label,
  });
  if (packed) rt.release(packed);
}

/** The buffer bound as the bias: the bias's, or a's where the product has none (bound, never read). */
function biasBuffer(p: Problem): GPUBuffer {
  return p.bias?.buffer ?? p.a.buffer;
}

/** The buffer bound as the addend: the addend's, or a's where the product has none (bound, never read). */
function addendBuffer(p: Problem): GPUBuffer {
  return p.addend?.buffer ?? p.a.buffer;
}

/** Strides in units of `e` elements (vec4s, 16-byte chunks). */
function dividedBy(strides: readonly number[], e: number): number[] {
  const out = new Array<number>(strides.length);
  for (let i = 0; i < strides.length; i++) out[i] = strides[i]! / e;
  return out;
}

type TilingVariant = Extract<MatmulVariant, { kernel: 'v1' | 'v2' | 'v4' | 'sgmat' }>;

function tiling(v: MatmulVariant): v is TilingVariant {
  return v.kernel === 'v1' || v.kernel === 'v2' || v.kernel === 'v4' || v.kernel === 'sgmat';
}

/** Encodes a product with a kernel that tiles c: a workgroup per output tile and batch index. */
function encodeTiled(rt: Runtime, kernel: CompiledKernel, v: TilingVariant, p: Problem, label: string): void {
  const [tileM, tileN] = v.kernel === 'v1' ? [16, 16] : v.kernel === 'sgmat' ? [v.tm, v.tn] : [v.tile, v.tile];
  const params = packParams('matmul_strided', {
    M: p.M,
    N: p.N,
    K: p.K,
    batch_rank: p.batchShape.length,
    a_offset: p.a.offset,
    b_offset: p.b.offset,
    a_sm: p.a.rowStride,
    a_sk: p.a.colStride,
    b_sk: p.b.rowStride,
    b_sn: p.b.colStride,
    bias_offset: p.bias?.offset ?? 0,
    addend_offset: p.addend?.offset ?? 0,
    alpha: p.addend?.alpha ?? 1,
    batch_shape: p.batchShape,
    a_batch_strides: p.a.batchStrides,
    b_batch_strides: p.b.batchStrides,
  });
  const workgroups = [Math.ceil(p.N / tileN), Math.ceil(p.M / tileM), numel(p.batchShape)] as const;
  rt.dispatch({ kernel, params, buffers: [p.a.buffer, p.b.buffer, p.c, biasBuffer(p), addendBuffer(p)], workgroups, label });
}

/** A product as `splits` products over consecutive slices of k: one more, outermost, batch dimension, into c (without the bias and addend, which their sum adds). */
function sliceK(p: Problem, splits: number, c: GPUBuffer): Problem {
  const k = p.K / splits;
  return {
    ...p,
    K: k,
    batchShape: [splits, ...p.batchShape],
    a: { ...p.a, batchStrides: [k * p.a.colStride, ...p.a.batchStrides] },
    b: { ...p.b, batchStrides: [k * p.b.rowStride, ...p.b.batchStrides] },
    c,
    bias: undefined,
    addend: undefined,
  };
}

/**
 * Encodes a product split into `splits` slices of k: the slices are one more (outermost) batch dimension
 * of the same tiling kernel, each operand stepping K / splits along k, into f32 partial products that
 * matmul_split_sum adds up in order into c.
 */
function encodeSplit(rt: Runtime, v: TilingVariant, p: Problem, splits: number, kernels: CompiledKernel[], label: string): void {
  const cells = numel(p.batchShape) * p.M * p.N;
  const partial = rt.acquire(splits * cells * 4);
  encodeTiled(rt, kernels[kernels.length - 2]!, v, sliceK(p, splits, partial), label);
  const params = packParams('matmul_split_sum', { numel: cells, splits, bias_offset: p.bias?.offset ?? 0, N: p.N, addend_offset: p.addend?.offset ?? 0, alpha: p.addend?.alpha ?? 1 });
  rt.dispatch({ kernel: kernels[kernels.length - 1]!, params, buffers: [partial, p.c, biasBuffer(p), addendBuffer(p)], workgroups: grid1d(cells, 256), label: `${label} (sum of ${splits} slices of k)` });
  rt.release(partial);
}

/** Encodes the packing of b into v3 panels; returns the packed buffer (release it after the product). */
function encodePack(rt: Runtime, kernel: ReturnType<Runtime['kernel']>, p: Problem, sg: number, label: string): GPUBuffer {
  const bytes = packedBytes(p, sg);
  const total = bytes / (4 * itemSize[p.dtype]);
  const out = rt.acquire(Math.max(16, bytes));
  const params = packParams('matmul_pack', { N: p.N, K: p.K, b_offset: p.b.offset, b_sk: p.b.rowStride, b_sn: p.b.colStride, total });
  rt.dispatch({ kernel, params, buffers: [p.b.buffer, out], workgroups: grid1d(total, 64), label: `${label} (pack b)` });
  return out;
}
