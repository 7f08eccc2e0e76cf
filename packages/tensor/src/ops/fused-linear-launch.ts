// The launch of kernels/matvec_fused.wgsl for the fused decode products (fused-linear.ts): its layout per
// adapter, its defines per dtype, the epilogue's operands (residual, norm, LoRA adapters) as uniforms.
import type { KernelRewrite } from '../backend/matmul-encode.js';
import type { CompiledKernel, Runtime } from '../backend/runtime.js';
import { getRuntime } from '../backend/context.js';
import { grid1d, kernelSource, packParams, variantKey } from '../kernels.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import { empty, type Tensor } from '../tensor.js';
import { choiceFor } from '../tuning.js';
import { contiguousData } from './launch.js';

/** 16-byte loads per row per pass: matvec.v3's (sums in its order at this U). */
export const UNROLL = 4;
/**
 * Outputs per subgroup: matvec.v3's 2 on a GPU; more on a CPU adapter (lavapipe), which pays per
 * workgroup, and where each workgroup's RMS of x (the norm) costs as much as its few rows.
 */
export const rowsPerSubgroup = (rt: Runtime) => (rt.info.isFallbackAdapter ? 8 : 2);

/** The kernel's epilogue: concatenated products, residual add, SwiGLU of two products. */
export const Epilogue = { Cat: 0, Add: 1, Swiglu: 2 } as const;
export type Epilogue = (typeof Epilogue)[keyof typeof Epilogue];

/** LLaMA's RMSNorm of the input before the product: x / sqrt(mean(x^2) + eps) * weight ([K]). */
export interface FusedNorm {
  readonly weight: Tensor;
  readonly eps: number;
}

/**
 * Unmerged LoRA adapters of a fused product's weights (PEFT at inference: base(x) + B(A(x)) * scaling),
 * their update added in the product's epilogue. `h` holds x A_i^T of the adapted weights, concatenated in
 * weight order ([..., sum r_i], e.g. from {@link fusedLinear} of x and the A_i, with the same norm); `b`
 * holds their B_i ([N_i, r_i] each, contiguous) one after the other (flat, or the one B itself).
 */
export interface FusedLora {
  readonly h: Tensor;
  readonly b: Tensor;
  /** Per weight in order, its adapter's rank and scaling (alpha / r, or any real), or null where it has none. */
  readonly adapters: ReadonlyArray<FusedAdapter | null>;
}

/** One weight's adapter in a {@link FusedLora}. */
export interface FusedAdapter {
  readonly rank: number;
  readonly scaling: number;
}

const kernels = new WeakMap<Runtime, Map<string, CompiledKernel>>();
let rewrite: KernelRewrite | null = null;

/**
 * Rewrites the WGSL of every fused-product pipeline created from now on (null: none), their keys
 * suffixed with the rewrite's name: for showing that the on-device check refuses a wrong kernel.
 */
export function setFusedLinearRewrite(r: KernelRewrite | null): void {
  rewrite = r;
}

/** The rewrite set by {@link setFusedLinearRewrite}, or null. */
export function fusedLinearRewrite(): KernelRewrite | null {
  return rewrite;
}

/** The kernel's element read and normalized chunk, for 16-byte chunks of 4 f32 or of 8 f16 (4 packed pairs). */
const F32_NORM = { X_ELEM: '  return x[i / 4u][i % 4u];', H_ELEM_W1: '    return w1[i / 4u][i % 4u];', NORM_CHUNK: '  return gc * (xc * r);' };
const F16_NORM = {
  X_ELEM: '  return unpack2x16float(x[i / 8u][(i % 8u) / 2u])[i % 2u];',
  H_ELEM_W1: '    return unpack2x16float(w1[i / 8u][(i % 8u) / 2u])[i % 2u];',
  NORM_CHUNK: [
    '  var out: vec4<u32>;',
    '  for (var j = 0u; j < 4u; j++) {',
    '    let h = round_to_t2(unpack2x16float(xc[j]) * r);',
    '    out[j] = pack2x16float(round_to_t2(unpack2x16float(gc[j]) * h));',
    '  }',
    '  return out;',
  ].join('\n'),
};

/** Elements in a 16-byte chunk. */
export const chunkOf = (t: Tensor) => (t.dtype === 'f16' ? 8 : 4);

/** What one launch computes: the epilogue and its operands. */
export interface RunArgs {
  epi: Epilogue;
  x: Tensor;
  weights: readonly Tensor[];
  residual?: Tensor;
  norm?: FusedNorm;
  lora?: FusedLora;
  /** Cat only: the weights' biases concatenated [N], in lora.b's buffer where there are adapters. */
  bias?: Tensor;
  /** No base product (K = 0): only the adapters' update, added to the residual; N is the one B's rows. */
  loraOnly?: number;
}

/**
 * The adapter epilogue's uniforms (both fused kernels): where h starts and its row length, and each adapted
 * weight's rank, scaling, first column of h and first element of b, in weight order (`rows(i)`: weight i's
 * outputs, the rows of its B).
 */
export function adapterParams(lora: FusedLora | undefined, h: Tensor | null, rows: (i: number) => number): AdapterParams {
  const r: [number, number, number] = [0, 0, 0];
  const sc: [number, number, number] = [0, 0, 0];
  const c: [number, number, number] = [0, 0, 0];
  const b: [number, number, number] = [0, 0, 0];
  if (lora !== undefined) {
    let [hCol, bStart] = [0, lora.b.offset];
    lora.adapters.forEach((ad, i) => {
      if (ad === null) return;
      [r[i], sc[i], c[i], b[i]] = [ad.rank, ad.scaling, hCol, bStart];
      hCol += ad.rank;
      bStart += ad.rank * rows(i);
    });
  }
  return {
    h_offset: h?.offset ?? 0,
    h_row: r[0] + r[1] + r[2],
    lr0: r[0], lr1: r[1], lr2: r[2],
    lh0: c[0], lh1: c[1], lh2: c[2],
    lb0: b[0], lb1: b[1], lb2: b[2],
    ls0: sc[0], ls1: sc[1], ls2: sc[2],
  };
}

/** The bias uniforms (both fused kernels): whether there is one, and where it starts in b's buffer. */
export function biasParams(bias: Tensor | undefined): { bias: number; bias_offset: number } {
  return { bias: bias === undefined ? 0 : 1, bias_offset: bias?.offset ?? 0 };
}

/** The adapter epilogue's uniforms of {@link adapterParams}. */
type AdapterParams = Record<'h_offset' | 'h_row' | `${'lr' | 'lh' | 'lb' | 'ls'}${0 | 1 | 2}`, number>;

/** Subgroups a workgroup of the fused kernels: the wide decode kernel's, as the device's matmul choice has it. */
export function decodeGroups(rt: Runtime): number {
  const decode = choiceFor(rt).decode;
  return decode?.kernel === 'matvec' && decode.wide && decode.groups ? decode.groups : 1;
}

/**
 * The fused kernel `name` with the defines `make` gives (with the rewrite of {@link setFusedLinearRewrite}
 * in force), compiled once per runtime and `key` (what the defines depend on).
 */
export function fusedKernel(rt: Runtime, name: 'matvec_fused' | 'matvec_fused_int8' | 'matvec_fused_nf4', key: string, make: () => Record<string, string>): CompiledKernel {
  const rw = rewrite;
  const full = `${name}|${key}|${rw?.name ?? ''}`;
  let byKey = kernels.get(rt);
  if (!byKey) kernels.set(rt, (byKey = new Map()));
  let kernel = byKey.get(full);
  if (!kernel) {
    const defines = make();
    const base = variantKey(name, defines);
    const wgsl = kernelSource(name, defines, base);
    kernel = rw === null ? rt.kernel(base, wgsl, base) : rt.kernel(`${base}+${rw.name}`, rw.rewrite(wgsl), `${base}+${rw.name}`);
    byKey.set(full, kernel);
  }
  return kernel;
}

/** Dispatches the fused kernel for `a` (checked by the caller) and returns its output [..., N]. */
export function runFused(op: string, a: RunArgs): Tensor {
  const { epi, x, weights, norm, lora } = a;
  const rt = getRuntime();
  const K = a.loraOnly === undefined ? x.shape[x.rank - 1]! : 0;
  const M = x.size / x.shape[x.rank - 1]!;
  const ce = chunkOf(x);
  const N = a.loraOnly ?? (epi === Epilogue.Cat ? weights.reduce((s, w) => s + w.shape[0]!, 0) : weights[0]!.shape[0]!);
  const out = empty([...x.shape.slice(0, -1), N], x.dtype);
  const xc = contiguousData(op, x);
  const r = a.residual === undefined ? null : contiguousData(op, a.residual);
  const hc = lora === undefined ? null : contiguousData(op, lora.h);
  const G = decodeGroups(rt);
  const sg = v3SubgroupSize(rt.info);
  // The epilogue, the norm and the adapters are uniforms: one pipeline per dtype and row count.
  const ROWS = rowsPerSubgroup(rt);
  const kernel = fusedKernel(rt, 'matvec_fused', `${x.dtype}|${M}|${G}|${ROWS}`, () => {
    const f16 = x.dtype === 'f16';
    const pair = (c: string) => `dot(unpack2x16float(xc.${c}), unpack2x16float(wc.${c}))`;
    return {
      T: x.dtype,
      T_IS_F16: String(f16),
      CH: f16 ? 'vec4<u32>' : 'vec4<f32>',
      CHUNK_DOT: f16 ? `  return ${['x', 'y', 'z', 'w'].map(pair).join(' + ')};` : '  return dot(xc, wc);',
      SG: String(sg),
      ROWS: String(ROWS),
      U: String(UNROLL),
      G: String(G),
      MR: String(M),
      CE: String(ce),
      ...(f16 ? F16_NORM : F32_NORM),
    };
  });
  const w0 = weights[0] ?? x;
  const [w1, w2] = [weights[1] ?? w0, weights[2] ?? w0];
  const n1 = epi === Epilogue.Cat ? weights[0]!.shape[0]! : N;
  const n2 = epi === Epilogue.Cat && weights.length > 1 ? n1 + weights[1]!.shape[0]! : N;
  const params = packParams('matvec_fused', {
    N,
    K: K / ce,
    n1,
    n2,
    x_offset: xc.offset / ce,
    x_row: K / ce,
    w0_offset: a.loraOnly === undefined ? w0.offset / ce : 0,
    w1_offset: w1.offset / ce,
    w2_offset: w2.offset / ce,
    r_offset: r?.offset ?? 0,
    r_row: N,
    eps: norm?.eps ?? 0,
    epi,
    norm: norm === undefined ? 0 : 1,
    ...adapterParams(lora, hc, (i) => a.loraOnly ?? weights[i]!.shape[0]!),
    ...biasParams(a.bias),
  });
  // h is read from r (cat, swiglu) or from w1 (add, whose r is the residual).
  const hb = hc?.buffer(op);
  const buffers = [
    xc.buffer(op),
    w0.buffer(op),
    (epi === Epilogue.Add && hb !== undefined ? hb : w1.buffer(op)),
    w2.buffer(op),
    (r ?? (epi !== Epilogue.Add ? hc : null) ?? xc).buffer(op),
    (norm?.weight ?? xc).buffer(op),
    (lora?.b ?? a.bias ?? xc).buffer(op),
    out.buffer(op),
  ];
  rt.dispatch({ kernel, params, buffers, workgroups: grid1d(N, ROWS * G), label: op });
  return out;
}
