// Which attention kernels a call runs: v1 or v2 (fused; v2 pipelines created in the background on GPUs,
// whose drivers may refuse a layout), the subgroup-per-split decode kernel, or composed attention (matmuls
// and a softmax) on GPUs at short sequences; and the switch that forces one (tests, benchmarks).
import { deviceInfo, getRuntime } from '../backend/context.js';
import type { DeviceInfo } from '../backend/device.js';
import type { CompiledKernel, Runtime } from '../backend/runtime.js';
import { kernelSource } from '../kernels.js';
import { v2Defines, v2Key, v2Layout, type V2Kernel, type V2Layout } from '../kernelgen/attention.js';

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
 * v2 pipelines being created, created or refused, per runtime. Where subgroups are 32 wide or more (GPUs,
 * whose drivers may refuse a layout, e.g. for too many registers a thread) a v2 variant is created
 * asynchronously on first use and v1 runs until it exists; one the driver refuses is never tried again.
 * Narrower subgroups (lavapipe) create it in place, as a forced v2 does, so that it runs at once.
 */
const v2Pipelines = new WeakMap<Runtime, Map<string, CompiledKernel | 'pending' | { refused: string }>>();

/** The v2 kernel to dispatch for this call, or null for v1. */
export function v2Kernel(rt: Runtime, kernel: V2Kernel, dtype: string, D: number): { kernel: CompiledKernel; rows: number } | null {
  if (forcedKernel === 'v1') return null;
  const l: V2Layout | null = v2Layout(rt.info, D, kernel);
  if (!l) return null;
  const key = v2Key(kernel, dtype, l);
  const rows = l.sg * l.rpl;
  if (forcedKernel === 'v2' || l.sg < 32) return { kernel: rt.kernel(key, kernelSource(kernel, () => v2Defines(kernel, dtype, l), key), key), rows };
  let states = v2Pipelines.get(rt);
  if (!states) v2Pipelines.set(rt, (states = new Map()));
  const state = states.get(key);
  if (state === undefined) {
    states.set(key, 'pending');
    rt.kernelChecked(key, kernelSource(kernel, () => v2Defines(kernel, dtype, l), key), key).then(
      (k) => states.set(key, k),
      (e: Error) => states.set(key, { refused: e.message }),
    );
    return null;
  }
  return typeof state === 'object' && 'pipeline' in state ? { kernel: state, rows } : null;
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
