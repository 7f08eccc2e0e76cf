// Matmul encoding: the WGSL modules a planned product needs (keyed by variant and defines), their
// uniform blocks and grids, and the dispatches (with b first packed into panels where planned).
import { grid1d, packParams, preprocess, type Defines } from '../kernels.js';
import type { WgslName } from '../kernels.generated.js';
import { sgmatParts, shareStep } from '../kernelgen/matmul.js';
import { itemSize, numel } from '../tensor.js';
import type { Runtime } from './runtime.js';
import { packedBytes, type MatmulPlan, type Problem } from './matmul-plan.js';

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
/** Output tile side of the subgroup-matrix kernel's workgroup (4 subgroups, 2 x 2). */
const SGMAT_TILE = 64;

function module(name: WgslName, defines: Defines, extra: Defines = {}): KernelSource {
  const keys = Object.keys(defines).sort();
  const key = `${name}(${keys.map((k) => `${k}=${defines[k]}`).join(',')})`;
  return { key, source: preprocess(name, { ...defines, ...extra }) };
}

/** The modules a planned product runs, in dispatch order (the packing of b first, where planned). */
export function matmulKernels(p: Problem, pl: MatmulPlan, custom?: KernelRewrite): KernelSource[] {
  const v = pl.kernel;
  const T = p.dtype;
  const out: KernelSource[] = [];
  if (pl.packB && v.kernel === 'v3') out.push(module('matmul_pack', { T, SG: String(v.sg) }));
  switch (v.kernel) {
    case 'v1':
      out.push(module('matmul', { T }));
      break;
    case 'v2':
      out.push(module('matmul.v2', { T, TILE: String(v.tile) }));
      break;
    case 'v3': {
      const d = { T, SG: String(v.sg), TM: String(v.rows), BT: String(pl.transposedB), PACKED: String(pl.packB) };
      out.push(module('matmul.v3', d, { SHARE: shareStep(v.sg, v.rows) }));
      break;
    }
    case 'v4':
      out.push(module('matmul.v4', { T, TILE: String(v.tile) }));
      break;
    case 'sgmat': {
      const d = { T, SM: String(v.m), SN: String(v.n), SK: String(v.k), SG: String(v.sg) };
      out.push(module('matmul_sgmat', d, sgmatParts(v.m, v.n, v.k)));
      break;
    }
    case 'matvec':
      out.push(v.sg === undefined ? module('matvec', { T, WG: String(MATVEC_WG), BT: String(pl.transposedB) }) : module('matvec.v2', { T, SG: String(v.sg) }));
      break;
  }
  if (custom) {
    const last = out[out.length - 1]!;
    out[out.length - 1] = { key: `${last.key}#${custom.name}`, source: custom.rewrite(last.source) };
  }
  return out;
}

/** Encodes one product with a given plan. */
export function encodeMatmul(rt: Runtime, p: Problem, pl: MatmulPlan, label: string, custom?: KernelRewrite): void {
  const sources = matmulKernels(p, pl, custom);
  const kernels = sources.map((s) => rt.kernel(s.key, s.source, s.key));
  const kernel = kernels[kernels.length - 1]!;
  const batch = numel(p.batchShape);
  const rank = p.batchShape.length;
  const v = pl.kernel;
  if (v.kernel === 'v1' || v.kernel === 'v2' || v.kernel === 'v4' || v.kernel === 'sgmat') {
    const tile = v.kernel === 'v1' ? 16 : v.kernel === 'sgmat' ? SGMAT_TILE : v.tile;
    // v4 and sgmat stage tiles walking each operand's contiguous dimension (v1 and v2 ignore it).
    const walkA = p.a.colStride === 1 || p.M === 1 ? 1 : 0;
    const walkB = p.b.colStride === 1 || p.K === 1 ? 1 : 0;
    const params = packParams('matmul_strided', {
      M: p.M,
      N: p.N,
      K: p.K,
      batch_rank: rank,
      a_offset: p.a.offset,
      b_offset: p.b.offset,
      a_sm: p.a.rowStride,
      a_sk: p.a.colStride,
      b_sk: p.b.rowStride,
      b_sn: p.b.colStride,
      a_walk_k: walkA,
      b_walk_n: walkB,
      batch_shape: p.batchShape,
      a_batch_strides: p.a.batchStrides,
      b_batch_strides: p.b.batchStrides,
    });
    rt.dispatch({ kernel, params, buffers: [p.a.buffer, p.b.buffer, p.c], workgroups: [Math.ceil(p.N / tile), Math.ceil(p.M / tile), batch], label });
    return;
  }
  const q = (x: number) => x / 4;
  const bRow = pl.transposedB ? p.b.colStride : p.b.rowStride;
  if (v.kernel === 'matvec') {
    const params = packParams('matvec', {
      N: p.N,
      K: p.K,
      x_offset: q(p.a.offset),
      w_offset: q(p.b.offset),
      w_row: q(bRow),
      batch_rank: rank,
      batch_shape: p.batchShape,
      x_batch_strides: p.a.batchStrides.map(q),
      w_batch_strides: p.b.batchStrides.map(q),
    });
    const groups: readonly [number, number] = v.sg === undefined ? [Math.ceil(p.N / 4 / MATVEC_WG), 1] : grid1d(Math.ceil(p.N / 4), 1, rt.info.maxComputeWorkgroupsPerDimension);
    rt.dispatch({ kernel, params, buffers: [p.a.buffer, p.b.buffer, p.c], workgroups: [groups[0], groups[1], batch], label });
    return;
  }
  const packed = pl.packB ? encodePack(rt, kernels[0]!, p, v.sg, label) : null;
  const bOffset = packed ? 0 : q(p.b.offset);
  const bBatch = packed ? [0] : p.b.batchStrides.map(q);
  const params = packParams('matmul.v3', {
    M: p.M,
    N: p.N,
    K: p.K,
    batch_rank: rank,
    a_offset: q(p.a.offset),
    b_offset: bOffset,
    a_sm: q(p.a.rowStride),
    b_row: packed ? 0 : q(bRow),
    batch_shape: p.batchShape,
    a_batch_strides: p.a.batchStrides.map(q),
    b_batch_strides: bBatch,
  });
  rt.dispatch({
    kernel,
    params,
    buffers: [p.a.buffer, packed ?? p.b.buffer, p.c],
    workgroups: packed ? [Math.ceil(p.M / v.rows), Math.ceil(p.N / (4 * v.sg)), batch] : [Math.ceil(p.N / (4 * v.sg)), Math.ceil(p.M / v.rows), batch],
    label,
  });
  if (packed) rt.release(packed);
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
