// Readiness of the fused attention kernels: the v2 pipelines a model's head dims and dtypes will use,
// created (or refused by the device) before the first step, so that every step runs the same kernels.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ValueError } from '../errors.js';
import type { FloatDType } from '../tensor.js';
import { MAX_D } from './attention.js';
import { forcedAttentionKernel, startV2, v2CreatedInPlace, v2Variant, type AttentionV2Kernel, type V2Variant } from './attention-choice.js';

/** Options of {@link readyAttention}. */
export interface ReadyAttentionOptions {
  /** The head dim D (or dims) attention will run with. */
  headDim: number | readonly number[];
  /** The dtypes of q, k and v it will run with (default ['f32']). */
  dtypes?: readonly FloatDType[];
  /** Also the backward kernels (dq, and dk with dv), for training (default false). */
  backward?: boolean;
  /** Also the decode kernel (one new token against a KV cache), for generation (default false). */
  decode?: boolean;
}

/**
 * What one fused attention kernel will run after {@link readyAttention}: v2, or v1 and why, or no fused
 * kernel at all because composed attention is forced (setAttentionKernel('composed')).
 */
export interface AttentionReadiness {
  kernel: AttentionV2Kernel;
  headDim: number;
  dtype: FloatDType;
  runs: 'v1' | 'v2' | 'composed';
  /** Why v1 or composed runs: forced, no v2 layout for this head dim on this adapter, or the device's refusal. */
  reason?: string;
}


/**
 * Creates, before the first step, the v2 attention pipelines that calls with these head dims and dtypes
 * will use on the current device: the forward; with `backward` dq and dk/dv; with `decode` the decode
 * kernel (T == 1). Where v2 pipelines are created in the background on first use (GPUs, whose drivers
 * may refuse a layout), v1 runs until one exists, so the first steps of a run would depend on compile
 * timing; once this has resolved, each kernel runs v2 from the first call, or v1 for good where the
 * device refused it (the reason is in the result). Where v2 is created in place (subgroups narrower
 * than 32, as on lavapipe, or v2 forced) it resolves at once. Calling it again is cheap. The trainer
 * (with backward) and `generate` (with decode) await it; a benchmark should too, before its first step.
 * @example
 * const kernels = await readyAttention({ headDim: 128, dtypes: ['f16'], backward: true });
 * for (const k of kernels) if (k.runs === 'v1') console.log(k.kernel, k.reason);
 */
export async function readyAttention(options: ReadyAttentionOptions): Promise<AttentionReadiness[]> {
  const rt = getRuntime();
  const dims = typeof options.headDim === 'number' ? [options.headDim] : options.headDim;
  const dtypes = options.dtypes ?? ['f32'];
  check(dims, dtypes, rt.info.features.has('shader-f16'));
  const kernels: AttentionV2Kernel[] = ['attention_forward.v2'];
  if (options.backward) kernels.push('attention_backward_dq.v2', 'attention_backward_dkv.v2');
  if (options.decode) kernels.push('attention_decode_partial.v2');
  const composed = forcedAttentionKernel() === 'composed';
  const calls: { what: Omit<AttentionReadiness, 'runs'>; v: V2Variant | null }[] = [];
  for (const headDim of dims) {
    for (const dtype of dtypes) {
      for (const kernel of kernels) calls.push({ what: { kernel, headDim, dtype }, v: composed ? null : v2Variant(rt, kernel, dtype, headDim) });
    }
  }
  if (composed) return calls.map(({ what }) => ({ ...what, runs: 'composed', reason: 'composed attention is forced (setAttentionKernel)' }));
  const background = calls.filter((c) => c.v !== null && !v2CreatedInPlace(c.v.sg));
  await Promise.all(background.map((c) => startV2(rt, c.v!)).map((s) => ('pending' in s ? s.pending : undefined)));
  return calls.map(({ what, v }): AttentionReadiness => {
    if (v === null) {
      const reason =
        forcedAttentionKernel() === 'v1'
          ? 'v1 is forced (setAttentionKernel)'
          : what.kernel === 'attention_decode_partial.v2'
            ? 'the adapter reports no single subgroup size'
            : `no v2 layout for head dim ${what.headDim} on this adapter`;
      return { ...what, runs: 'v1', reason };
    }
    const s = v2CreatedInPlace(v.sg) ? null : startV2(rt, v);
    return s !== null && 'refused' in s ? { ...what, runs: 'v1', reason: s.refused } : { ...what, runs: 'v2' };
  });
}

function check(dims: readonly number[], dtypes: readonly FloatDType[], f16: boolean): void {
  for (const D of dims) {
    if (!Number.isInteger(D) || D < 1 || D > MAX_D) throw new ValueError(`readyAttention: headDim ${D}; attention takes head dims 1 to ${MAX_D}`);
  }
  for (const dtype of dtypes) {
    if (dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(`readyAttention: dtype ${String(dtype)}; attention runs in f32 or f16`);
    if (dtype === 'f16' && !f16) throw new DTypeError('readyAttention: f16 needs the adapter feature shader-f16, which this adapter lacks; use f32');
  }
}
