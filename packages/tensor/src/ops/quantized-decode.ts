// Decoding's quantized products (kernels/matvec_int8.wgsl, matvec_nf4.wgsl): y = x W^T for a few rows of x
// with lanes striding along k over the packed codes, where the adapter's matmul choice decodes with a
// subgroup matrix-vector kernel; the tiled dequantizing kernels run everywhere else. Pipelines are created
// in the background on GPUs (the tiled kernel runs until one exists, and for good if the driver refuses it).
import type { CompiledKernel, Runtime } from '../backend/runtime.js';
import { grid1d, kernelSource, packParams, variantKey } from '../kernels.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import type { QuantizedWeight } from '../quant/weight.js';
import { empty, type Tensor } from '../tensor.js';
import { choiceFor } from '../tuning.js';
import { FUSED_LINEAR_MAX_ROWS } from './fused-linear.js';

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

/** A matrix-vector pipeline: created, being created in the background, or refused by the device. */
type State = CompiledKernel | { pending: Promise<void> } | { refused: string };

const states = new WeakMap<Runtime, Map<string, State>>();

/**
 * Why the device refused the quantized matrix-vector pipelines so far (each variant's key and the
 * compiler's message); products of those variants run the tiled kernels instead.
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

/** The pipeline of a variant, or null while it is being created in the background or after the device refused it. */
function pipeline(rt: Runtime, key: string, source: () => string, sg: number): CompiledKernel | null {
  if (forced === 'matvec' || sg < 32) return rt.kernel(key, source(), key);
  let byKey = states.get(rt);
  if (!byKey) states.set(rt, (byKey = new Map()));
  let state = byKey.get(key);
  if (state === undefined) {
    const pending = rt.kernelChecked(key, source(), key).then(
      (k) => void byKey.set(key, k),
      (e: Error) => void byKey.set(key, { refused: e.message }),
    );
    byKey.set(key, (state = { pending }));
  }
  return 'pipeline' in state ? state : null;
}

/**
 * y [M, N] = x [M, K] W^T with the matrix-vector kernels, or null where the tiled kernels should run (more
 * than {@link FUSED_LINEAR_MAX_ROWS} rows, no subgroup matrix-vector decoding on this adapter, or no
 * pipeline yet). x contiguous at offset 0, f32 or f16.
 */
export function quantizedDecode(rt: Runtime, x: Tensor, w: QuantizedWeight, label: string): Tensor | null {
  const [M, K] = [x.shape[0]!, x.shape[1]!];
  if (M < 1 || M > FUSED_LINEAR_MAX_ROWS) return null;
  const l = layout(rt);
  if (l === null) return null;
  const name = w.format === 'int8' ? 'matvec_int8' : 'matvec_nf4';
  const E = w.format === 'int8' ? 16 : 32;
  const table = forcedTable ?? (rt.info.isFallbackAdapter ? 'constant' : 'workgroup');
  const defines: Record<string, string> = { T: x.dtype, SG: String(l.sg), ROWS: String(ROWS), U: String(UNROLL), G: String(l.groups), MR: String(M) };
  if (w.format === 'nf4') defines.WG_TABLE = String(table === 'workgroup');
  const key = variantKey(name, defines);
  const kernel = pipeline(rt, key, () => kernelSource(name, defines, key), l.sg);
  if (kernel === null) return null;
  const N = w.rows;
  const out = empty([M, N], x.dtype);
  // A row starting inside a chunk covers one more than its whole chunks.
  const chunks = K % E === 0 ? K / E : Math.floor((K - 1) / E) + 2;
  const workgroups = grid1d(N, ROWS * l.groups, rt.info.maxComputeWorkgroupsPerDimension);
  const base = { N, K, chunks, x_row: K / 4 };
  if (w.format === 'int8') {
    const buffers = [x.buffer(label), w.codes.buffer(label), w.scales.buffer(label), out.buffer(label)];
    rt.dispatch({ kernel, params: packParams('matvec_int8', base), buffers, workgroups: [workgroups[0], workgroups[1], 1], label });
  } else {
    const buffers = [x.buffer(label), w.codes.buffer(label), w.absmaxCodes!.buffer(label), w.scales.buffer(label), w.dynamicMap!.buffer(label), out.buffer(label)];
    rt.dispatch({ kernel, params: packParams('matvec_nf4', { ...base, offset: w.offset }), buffers, workgroups: [workgroups[0], workgroups[1], 1], label });
  }
  return out;
}
