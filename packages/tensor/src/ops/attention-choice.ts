// Which attention kernels a call runs: v1 or v2 (fused, and the subgroup-per-split decode kernel; v2
// pipelines created in the background on GPUs, whose drivers may refuse a layout), or composed attention
// (matmuls and a softmax) on GPUs at short sequences; and the switches that force one (tests, benchmarks).
import { deviceInfo, getRuntime } from '../backend/context.js';
import type { DeviceInfo } from '../backend/device.js';
import type { CompiledKernel, Runtime } from '../backend/runtime.js';
import type { KernelRewrite } from '../backend/matmul-encode.js';
import { kernelSource, variantKey, type Defines } from '../kernels.js';
import { v1Defines, v2Defines, v2Key, v2Layout, type V2Kernel } from '../kernelgen/attention.js';

/**
 * Which attention kernels run: `v1` (portable), `v2` (subgroup sharing), or `composed` (batched matmuls
 * and a softmax; builds the T x S scores; ops/attention-composed.ts).
 */
export type AttentionKernel = 'v1' | 'v2' | 'composed';

/**
 * Composed attention runs by itself on adapters with subgroups of 32 or more (GPUs) for calls (T > 1)
 * whose f32 scores take at most this many bytes and T x S at most COMPOSED_MAX_GRID: there
 * the products run on the matmul kernels (tensor cores where offered) at a memory cost of three score
 * matrices, where the fused kernels run on CUDA cores.
 */
const COMPOSED_MAX_BYTES = 64 << 20;
const COMPOSED_MAX_GRID = 512 * 512;

let forcedKernel: AttentionKernel | null = null;

/** The kernel forced by {@link setAttentionKernel}, or null. */
export function forcedAttentionKernel(): AttentionKernel | null {
  return forcedKernel;
}

/**
 * Forces the attention kernels (`null`: v2 where the adapter and head dim allow it, else v1). Forcing v2
 * still falls back to v1 where v2 cannot run; `attentionKernelFor` tells which one will.
 * @example setAttentionKernel('v1'); // ... setAttentionKernel(null);
 */
export function setAttentionKernel(kernel: AttentionKernel | null): void {
  forcedKernel = kernel;
}

/**
 * The kernels attention with head dim D runs on the current device (T > 1; T = 1 forwards decode). On
 * adapters with 32-wide subgroups or more, v2 runs once its pipeline exists (v1 until then, and for good
 * if the driver refuses it); backward kernels may fall back on their own where their layout does not fit.
 */
export function attentionKernelFor(D: number): AttentionKernel {
  if (forcedKernel === 'v1' || forcedKernel === 'composed') return forcedKernel;
  return v2Layout(getRuntime().info, D, 'attention_forward.v2') ? 'v2' : 'v1';
}

/**
 * How v2 pipelines are created: `async` in the background on first use, v1 running until one exists (as
 * on GPUs, whose drivers may refuse a layout, e.g. for too many registers a thread), or `in-place` at
 * first use, so that v2 runs at once (as on lavapipe). Null: per adapter (see {@link v2CreatedInPlace}).
 */
export type V2Creation = 'async' | 'in-place';

let forcedCreation: V2Creation | null = null;
let v2Rewrite: KernelRewrite | null = null;

/** Forces how v2 pipelines are created on every adapter, or restores the adapter's way (null); for tests. */
export function setV2Creation(creation: V2Creation | null): void {
  forcedCreation = creation;
}

/**
 * Rewrites the WGSL of every v2 pipeline created from now on (null: none), their keys suffixed with the
 * rewrite's name so that they stand apart from the kernels as written: for trying a kernel change, or
 * showing how a pipeline the device refuses is handled.
 */
export function setV2Rewrite(rewrite: KernelRewrite | null): void {
  v2Rewrite = rewrite;
}

/**
 * The fused attention kernels with a v2 pipeline: those with a v2 layout (kernelgen/attention.ts) and the
 * decode kernel (T == 1), a subgroup per (row, split) where subgroups have one fixed size.
 */
export type AttentionV2Kernel = V2Kernel | 'attention_decode_partial.v2';

/**
 * Whether a v2 pipeline for subgroups of `sg` lanes is created in place at first use: when v2 is forced,
 * and where subgroups are narrower than 32 (lavapipe) unless {@link setV2Creation} says otherwise.
 */
export function v2CreatedInPlace(sg: number): boolean {
  if (forcedKernel === 'v2') return true;
  return (forcedCreation ?? (sg < 32 ? 'in-place' : 'async')) === 'in-place';
}

/** The decode kernel's v2 variant per runtime, by dtype and head dim, with the rewrite it was made under. */
const decodeVariants = new WeakMap<Runtime, Map<string, { rewrite: KernelRewrite | null; variant: V2Variant }>>();

/** A v2 kernel variant for one call: its pipeline key, WGSL (built on first use), rows a workgroup and subgroup size. */
export interface V2Variant {
  key: string;
  source: () => string;
  rows: number;
  sg: number;
}

/**
 * The v2 variant of `kernel` for dtype and head dim D on this runtime, or null where v1 runs (forced, or
 * no layout; for the decode kernel, no fixed subgroup size).
 */
export function v2Variant(rt: Runtime, kernel: AttentionV2Kernel, dtype: string, D: number): V2Variant | null {
  if (forcedKernel === 'v1') return null;
  if (kernel === 'attention_decode_partial.v2') {
    const sg = decodeSubgroupSize(rt.info);
    if (sg === 0) return null;
    // Kept per runtime, dtype and D (decoding asks every layer of every token) while the rewrite stays.
    let kept = decodeVariants.get(rt);
    if (kept === undefined) decodeVariants.set(rt, (kept = new Map()));
    const keptKey = `${dtype} ${D}`;
    const found = kept.get(keptKey);
    if (found !== undefined && found.rewrite === v2Rewrite) return found.variant;
    const defines = () => ({ ...v1Defines(dtype, D, ['q', 'k', 'v'], []), SG: String(sg), LPD: String(Math.ceil(Math.ceil(D / 4) / sg)) });
    const variant = rewritten(kernel, variantKey(kernel, defines()), defines, 1, sg);
    kept.set(keptKey, { rewrite: v2Rewrite, variant });
    return variant;
  }
  const l = v2Layout(rt.info, D, kernel);
  if (!l) return null;
  return rewritten(kernel, v2Key(kernel, dtype, l), () => v2Defines(kernel, dtype, l), l.sg * l.rpl, l.sg);
}

/** A variant keyed `base` with the WGSL of `kernel` under `defines`, rewritten by {@link setV2Rewrite}'s rewrite if set. */
function rewritten(kernel: AttentionV2Kernel, base: string, defines: () => Defines, rows: number, sg: number): V2Variant {
  const rewrite = v2Rewrite;
  const key = rewrite ? `${base}+${rewrite.name}` : base;
  const source = () => {
    const wgsl = kernelSource(kernel, defines, base);
    return rewrite ? rewrite.rewrite(wgsl) : wgsl;
  };
  return { key, source, rows, sg };
}

/** A v2 pipeline created in the background: being created, created, or refused by the device (for good). */
export type V2State = CompiledKernel | { pending: Promise<void> } | { refused: string };

/** v2 pipelines created in the background, by key, per runtime. */
const v2Pipelines = new WeakMap<Runtime, Map<string, V2State>>();

/** Starts creating the pipeline of `v` in the background unless it was started before, and returns its state. */
export function startV2(rt: Runtime, v: V2Variant): V2State {
  let states = v2Pipelines.get(rt);
  if (!states) v2Pipelines.set(rt, (states = new Map()));
  let state = states.get(v.key);
  if (state === undefined) {
    const pending = rt.kernelChecked(v.key, v.source(), v.key).then(
      (k) => void states.set(v.key, k),
      (e: Error) => void states.set(v.key, { refused: e.message }),
    );
    states.set(v.key, (state = { pending }));
  }
  return state;
}

/**
 * The v2 kernel to dispatch for this call, or null for v1: created in place where {@link v2CreatedInPlace}
 * holds, else once its background creation has finished (v1 runs until then, and for good if refused).
 */
export function v2Kernel(rt: Runtime, kernel: AttentionV2Kernel, dtype: string, D: number): { kernel: CompiledKernel; rows: number } | null {
  const v = v2Variant(rt, kernel, dtype, D);
  if (!v) return null;
  if (v2CreatedInPlace(v.sg)) return { kernel: rt.kernel(v.key, v.source(), v.key), rows: v.rows };
  const state = startV2(rt, v);
  return 'pipeline' in state ? { kernel: state, rows: v.rows } : null;
}

/** The subgroup size the subgroup-per-split decode kernel is compiled for, or 0 (no fixed size: use v1). */
export function decodeSubgroupSize(info: DeviceInfo): number {
  const sg = info.subgroupMinSize;
  return info.features.has('subgroups') && sg === info.subgroupMaxSize && [4, 8, 16, 32, 64, 128].includes(sg) ? sg : 0;
}

/**
 * Whether attention over q [B, Hq, T, D] and keys [.., S, D] runs composed on the current device (forced,
 * or by itself on a GPU for a short sequence); false before a device is opened. Memory plans use it:
 * a composed call keeps three f32 [B, Hq, T, S] score matrices (four with a padding mask).
 */
export function composedAttentionFor(B: number, Hq: number, T: number, S: number): boolean {
  if (forcedKernel !== null) return forcedKernel === 'composed';
  if (T <= 1 || T * S > COMPOSED_MAX_GRID || B * Hq * T * S * 4 > COMPOSED_MAX_BYTES) return false;
  const info = deviceInfo();
  return info !== null && decodeSubgroupSize(info) >= 32;
}
