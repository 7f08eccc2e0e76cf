// Decoding's quantized products (kernels/matvec_int8.wgsl, matvec_nf4.wgsl): y = x W^T for a few rows of x
// with lanes striding along k over the packed codes, where the adapter's matmul choice decodes with a
// subgroup matrix-vector kernel; the tiled dequantizing kernels run everywhere else. On GPUs each pipeline
// is created and checked against the CPU reference in the background: the tiled kernel runs until it has
// passed, and for good if the driver refuses it or it computes wrong results.
import { getRuntime } from '../backend/context.js';
import type { CompiledKernel, Runtime } from '../backend/runtime.js';
import { f16BitsToF32, f32ToF16Bits } from '../creation.js';
import { grid1d, kernelSource, packParams, variantKey } from '../kernels.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import { dequantizeHost, quantizeHost, type QuantFormat } from '../quant/formats.js';
import { QuantizedWeight } from '../quant/weight.js';
import { empty, type FloatDType, type Tensor } from '../tensor.js';
import { choiceFor } from '../tuning.js';
import { FUSED_LINEAR_MAX_ROWS } from './fused-linear.js';
import { checkValues as values } from '../check-values.js';

/** Which kernel decoding's quantized products run: the matrix-vector kernels or the tiled ones. */
export type QuantizedDecodePath = 'matvec' | 'tiled';

/** Rows a subgroup owns and 16-byte chunks of a row each lane loads per pass: matvec.v3's wide layout. */
const ROWS = 2;
const UNROLL = 4;

/** Where matvec_nf4 keeps the NF4 code values: workgroup memory (GPUs) or a constant array (CPU adapters). */
export type Nf4Table = 'workgroup' | 'constant';

let forced: QuantizedDecodePath | null = null;
let forcedTable: Nf4Table | null = null;

/**
 * Forces the kernels of quantized products with at most {@link FUSED_LINEAR_MAX_ROWS} rows of x on
 * every adapter with a fixed subgroup size (`matvec`, its pipeline then created in place), or the
 * tiled kernels (`tiled`); null restores the choice by the adapter's matmul choice. `nf4Table` forces
 * where the NF4 kernel looks its codes up (default: by adapter). For tests and benchmarks.
 * @example setQuantizedDecode('tiled'); // ... setQuantizedDecode(null);
 */
export function setQuantizedDecode(path: QuantizedDecodePath | null, nf4Table: Nf4Table | null = null): void {
  forced = path;
  forcedTable = nf4Table;
}

/** A matrix-vector pipeline: created (and checked), being created and checked in the background, or refused. */
type State = CompiledKernel | { pending: Promise<void> } | { refused: string };

const states = new WeakMap<Runtime, Map<string, State>>();

/**
 * Why the quantized matrix-vector pipelines were refused on this device so far (each variant's key and the
 * compiler's message, or the first wrong element of its check); products of those variants run the tiled
 * kernels instead.
 */
export function quantizedDecodeRefusals(rt: Runtime): string[] {
  return [...(states.get(rt)?.entries() ?? [])].flatMap(([key, s]) => ('refused' in s ? [`${key}: ${s.refused}`] : []));
}

/** The layout of the matrix-vector kernels on this runtime, or null where the tiled kernels run. */
function layout(rt: Runtime): { sg: number; groups: number } | null {
  if (forced === 'tiled') return null;
  const sg = v3SubgroupSize(rt.info);
  if (sg === 0) return null;
  const decode = choiceFor(rt).decode;
  // As the dense products: the 16-byte-chunk kernel where the search chose matvec.v3 (wide), with its groups.
  if (forced !== 'matvec' && !(decode?.sg !== undefined && decode.wide)) return null;
  return { sg, groups: decode?.wide && decode.groups ? decode.groups : 1 };
}

/** A matrix-vector variant: format, x's dtype and rows, whether it adds a bias, and the layout. */
interface Variant {
  format: QuantFormat;
  dtype: FloatDType;
  M: number;
  biased: boolean;
  sg: number;
  groups: number;
}

/**
 * The pipeline of a variant, or null while it is being created and checked in the background, or after
 * the device refused it or computed wrong results with it.
 */
function pipeline(rt: Runtime, key: string, source: () => string, v: Variant): CompiledKernel | null {
  // Forced, or on a CPU adapter (where the search's choice rarely picks them): created in place, unchecked.
  if (forced === 'matvec' || rt.info.isFallbackAdapter) return rt.kernel(key, source(), key);
  let byKey = states.get(rt);
  if (!byKey) states.set(rt, (byKey = new Map()));
  let state = byKey.get(key);
  if (state === undefined) {
    const pending = rt
      .kernelChecked(key, source(), key)
      .then(async (k) => {
        const wrong = await checkVariant(rt, k, v);
        byKey.set(key, wrong === null ? k : { refused: wrong });
      })
      .catch((e: Error) => void byKey.set(key, { refused: e.message }));
    byKey.set(key, (state = { pending }));
  }
  return 'pipeline' in state ? state : null;
}

/**
 * y [M, N] = x [M, K] W^T with the matrix-vector kernels, or null where the tiled kernels should run (more
 * than {@link FUSED_LINEAR_MAX_ROWS} rows, no subgroup matrix-vector decoding on this adapter, or no
 * pipeline yet). x contiguous at offset 0, f32 or f16; a bias [N] contiguous, added before the one rounding.
 */
export function quantizedDecode(rt: Runtime, x: Tensor, w: QuantizedWeight, label: string, bias?: Tensor): Tensor | null {
  const M = x.shape[0]!;
  if (M < 1 || M > FUSED_LINEAR_MAX_ROWS || (x.dtype !== 'f32' && x.dtype !== 'f16')) return null;
  const l = layout(rt);
  if (l === null) return null;
  const v: Variant = { format: w.format, dtype: x.dtype, M, biased: bias !== undefined, ...l };
  const { name, defines } = variantDefines(rt, v);
  const key = variantKey(name, defines);
  const kernel = pipeline(rt, key, () => kernelSource(name, defines, key), v);
  if (kernel === null) return null;
  const out = empty([M, w.rows], x.dtype);
  encode(rt, kernel, v, w, x.buffer(label), out.buffer(label), label, bias === undefined ? undefined : { buffer: bias.buffer(label), offset: bias.offset });
  return out;
}

/**
 * Runs the on-device check of the matrix-vector variant this adapter would decode with (forced: the one
 * `setQuantizedDecode('matvec')` runs) for a format, x's dtype and rows, with a bias or without, its pipeline
 * created now: null when it passes, else the reason. Where GPUs run the check in the background before use,
 * this runs it anyway.
 */
export async function checkQuantizedDecode(format: QuantFormat, dtype: FloatDType, M: number, biased = false): Promise<string | null> {
  const rt = getRuntime();
  const sg = v3SubgroupSize(rt.info);
  if (sg === 0) return 'no fixed subgroup size: the matrix-vector kernels do not run on this adapter';
  const decode = choiceFor(rt).decode;
  const v: Variant = { format, dtype, M, biased, sg, groups: decode?.wide && decode.groups ? decode.groups : 1 };
  const { name, defines } = variantDefines(rt, v);
  const key = variantKey(name, defines);
  try {
    return await checkVariant(rt, await rt.kernelChecked(key, kernelSource(name, defines, key), key), v);
  } catch (e) {
    return (e as Error).message;
  }
}

/** A variant's kernel file and defines. */
function variantDefines(rt: Runtime, v: Variant): { name: 'matvec_int8' | 'matvec_nf4'; defines: Record<string, string> } {
  const table = forcedTable ?? (rt.info.isFallbackAdapter ? 'constant' : 'workgroup');
  const defines: Record<string, string> = { T: v.dtype, SG: String(v.sg), ROWS: String(ROWS), U: String(UNROLL), G: String(v.groups), MR: String(v.M), BIAS: String(v.biased) };
  if (v.format === 'nf4') defines.WG_TABLE = String(table === 'workgroup');
  return { name: v.format === 'int8' ? 'matvec_int8' : 'matvec_nf4', defines };
}

/** A bias's buffer and the element its values start at. */
interface BiasBinding {
  buffer: GPUBuffer;
  offset: number;
}

/**
 * Dispatches a variant's kernel: y [M, N] = x [M, K] W^T (+ bias), x and y in their buffers from element 0
 * (without a bias, x's buffer is bound in its place, never read).
 */
function encode(rt: Runtime, kernel: CompiledKernel, v: Variant, w: QuantizedWeight, x: GPUBuffer, y: GPUBuffer, label: string, bias?: BiasBinding): void {
  const [N, K] = [w.rows, w.cols];
  const E = v.format === 'int8' ? 16 : 32;
  // A row starting inside a chunk covers one more than its whole chunks.
  const chunks = K % E === 0 ? K / E : Math.floor((K - 1) / E) + 2;
  const [gx, gy] = grid1d(N, ROWS * v.groups, rt.info.maxComputeWorkgroupsPerDimension);
  const base = { N, K, chunks, x_row: K / 4, bias_offset: bias?.offset ?? 0 };
  const b = bias?.buffer ?? x;
  if (v.format === 'int8') {
    const buffers = [x, w.codes.buffer(label), w.scales.buffer(label), y, b];
    rt.dispatch({ kernel, params: packParams('matvec_int8', base), buffers, workgroups: [gx, gy, 1], label });
  } else {
    const buffers = [x, w.codes.buffer(label), w.absmaxCodes!.buffer(label), w.scales.buffer(label), w.dynamicMap!.buffer(label), y, b];
    rt.dispatch({ kernel, params: packParams('matvec_nf4', { ...base, offset: w.offset }), buffers, workgroups: [gx, gy, 1], label });
  }
}

/**
 * Runs a variant's new pipeline once on a small awkward weight (rows starting inside chunks, NF4 blocks
 * straddling rows, rows past the last workgroup's) against the CPU product of the dequantized weight, as
 * the matmul search checks its kernels before a GPU decodes with them (a biased variant with its bias past
 * an offset, NaN before it, so that a kernel dropping the bias or reading it from element 0 fails): null when every element is within
 * f32 accumulation error (and one rounding to f16), else the reason, which the refusal keeps.
 */
async function checkVariant(rt: Runtime, kernel: CompiledKernel, v: Variant): Promise<string | null> {
  const [R, C] = [36, 72];
  const what = `${v.format} ${v.dtype}, ${v.M} row${v.M > 1 ? 's' : ''}, W [${R}, ${C}]${v.biased ? ' with a bias' : ''}`;
  const q = quantizeHost(values(R * C, 7, 'f32'), R, C, v.format);
  const wq = dequantizeHost(q);
  const xs = values(v.M * C, 8, v.dtype);
  const size = v.dtype === 'f16' ? 2 : 4;
  const w = QuantizedWeight.upload(q, 'check');
  // NaN past x's rows and in every element of y: a read past a row or an element never written fails.
  const xp = new Float32Array(xs.length + 64).fill(NaN);
  xp.set(xs);
  const yp = new Float32Array(v.M * R).fill(NaN);
  const BIAS_OFFSET = 5;
  const bs = values(R, 9, v.dtype);
  const bp = new Float32Array(BIAS_OFFSET + R).fill(NaN);
  bp.set(bs, BIAS_OFFSET);
  const x = rt.acquire(xp.length * size);
  const y = rt.acquire(yp.length * size);
  const b = rt.acquire(bp.length * size);
  try {
    rt.write(x, 0, v.dtype === 'f16' ? f32ToF16Bits(xp) : xp);
    rt.write(y, 0, v.dtype === 'f16' ? f32ToF16Bits(yp) : yp);
    rt.write(b, 0, v.dtype === 'f16' ? f32ToF16Bits(bp) : bp);
    rt.device.pushErrorScope('internal');
    rt.device.pushErrorScope('validation');
    encode(rt, kernel, v, w, x, y, 'quantized matvec check', v.biased ? { buffer: b, offset: BIAS_OFFSET } : undefined);
    rt.flush();
    const errors = [await rt.device.popErrorScope(), await rt.device.popErrorScope()].filter((e) => e !== null);
    if (errors.length > 0) return `${what}: ${errors.map((e) => e.message).join('; ')}`;
    const raw = await rt.read(y, 0, v.M * R * size);
    const got = v.dtype === 'f16' ? f16BitsToF32(new Uint16Array(raw)) : new Float32Array(raw);
    const rel = v.dtype === 'f16' ? 2 ** -11 : 0;
    for (let m = 0; m < v.M; m++) {
      for (let n = 0; n < R; n++) {
        let [s, mag] = [v.biased ? bs[n]! : 0, 0];
        for (let k = 0; k < C; k++) {
          s += xs[m * C + k]! * wq[n * C + k]!;
          mag += Math.abs(xs[m * C + k]! * wq[n * C + k]!);
        }
        const i = m * R + n;
        if (!(Math.abs(got[i]! - s) <= 2e-6 * mag + rel * Math.abs(s) + 1e-6)) return `${what}: element ${i} is ${got[i]}, the CPU reference ${s.toPrecision(7)}`;
      }
    }
    return null;
  } finally {
    rt.release(x);
    rt.release(y);
    rt.release(b);
    w.dispose();
  }
}
