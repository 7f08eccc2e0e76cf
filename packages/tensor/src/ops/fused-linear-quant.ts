// The launch of the fused decode products over quantized weights (kernels/matvec_fused_int8.wgsl,
// matvec_fused_nf4.wgsl): the epilogues and operands of fused-linear-launch.ts, the weights' codes and scales
// bound per part. Needs more storage buffers a stage than WebGPU's default 8 (int8 11, NF4 15).
import { getRuntime } from '../backend/context.js';
import { grid1d, packParams } from '../kernels.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import type { QuantizedWeight } from '../quant/weight.js';
import { empty, type Tensor } from '../tensor.js';
import { adapterParams, biasParams, decodeGroups, Epilogue, fusedKernel, UNROLL, type RunArgs } from './fused-linear-launch.js';
import { contiguousData } from './launch.js';

/** Storage buffers a stage the fused kernel of each format binds. */
export const FUSED_QUANT_BINDINGS = { int8: 11, nf4: 15 } as const;

/** Rows a subgroup owns: the quantized matrix-vector kernels' 2 on every adapter (more multiply the compile time on CPU drivers). */
const ROWS = 2;


/** What a quantized launch computes: {@link RunArgs} with quantized weights (one format). */
export interface QuantRunArgs extends Omit<RunArgs, 'weights' | 'loraOnly'> {
  weights: readonly QuantizedWeight[];
}

/** Dispatches the quantized fused kernel for `a` (checked by the caller) and returns its output [..., N]. */
export function runFusedQuantized(op: string, a: QuantRunArgs): Tensor {
  const { epi, x, weights, norm, lora } = a;
  const rt = getRuntime();
  const format = weights[0]!.format;
  const K = x.shape[x.rank - 1]!;
  const M = x.size / K;
  const N = epi === Epilogue.Cat ? weights.reduce((s, w) => s + w.rows, 0) : weights[0]!.rows;
  const out = empty([...x.shape.slice(0, -1), N], x.dtype);
  const xc = contiguousData(op, x);
  const r = a.residual === undefined ? null : contiguousData(op, a.residual);
  const hc = lora === undefined ? null : contiguousData(op, lora.h);
  const G = decodeGroups(rt);
  const name = format === 'int8' ? 'matvec_fused_int8' : 'matvec_fused_nf4';
  const kernel = fusedKernel(rt, name, `${x.dtype}|${M}|${G}|${ROWS}`, () => {
    const defines: Record<string, string> = { T: x.dtype, T_IS_F16: String(x.dtype === 'f16'), SG: String(v3SubgroupSize(rt.info)), ROWS: String(ROWS), U: String(UNROLL), G: String(G), MR: String(M) };
    if (format === 'nf4') defines.WG_TABLE = String(!rt.info.isFallbackAdapter);
    return defines;
  });
  const E = format === 'int8' ? 16 : 32;
  const [w0, w1, w2] = [weights[0]!, weights[1] ?? weights[0]!, weights[2] ?? weights[0]!];
  const n1 = epi === Epilogue.Cat ? w0.rows : N;
  const n2 = epi === Epilogue.Cat && weights.length > 1 ? n1 + w1.rows : N;
  const params = packParams('matvec_fused_q', {
    N,
    K: K / 4,
    n1,
    n2,
    x_offset: xc.offset / 4,
    x_row: K / 4,
    // A row starting inside a chunk covers one more than its whole chunks.
    chunks: K % E === 0 ? K / E : Math.floor((K - 1) / E) + 2,
    r_offset: r?.offset ?? 0,
    r_row: N,
    eps: norm?.eps ?? 0,
    epi,
    norm: norm === undefined ? 0 : 1,
    ...adapterParams(lora, hc, (i) => weights[i]!.rows),
    ...biasParams(a.bias),
    o0: w0.offset,
    o1: w1.offset,
    o2: w2.offset,
  });
  // h is read from r (cat, swiglu) or from g (add: r is the residual, and there is no norm).
  const hb = hc?.buffer(op);
  const xb = xc.buffer(op);
  const buffers = [
    xb,
    (r?.buffer(op) ?? (epi !== Epilogue.Add ? hb : undefined) ?? xb),
    (epi === Epilogue.Add ? hb : norm?.weight.buffer(op)) ?? xb,
    (lora?.b ?? a.bias)?.buffer(op) ?? xb,
    out.buffer(op),
    ...[w0, w1, w2].map((w) => w.codes.buffer(op)),
  ];
  if (format === 'int8') buffers.push(...[w0, w1, w2].map((w) => w.scales.buffer(op)));
  else buffers.push(...[w0, w1, w2].map((w) => w.absmaxCodes!.buffer(op)), ...[w0, w1, w2].map((w) => w.scales.buffer(op)), w0.dynamicMap!.buffer(op));
  const [gx, gy] = grid1d(N, ROWS * G, rt.info.maxComputeWorkgroupsPerDimension);
  rt.dispatch({ kernel, params, buffers, workgroups: [gx, gy, 1], label: op });
  return out;
}
