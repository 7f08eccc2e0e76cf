// sampleLogits: one token drawn per row of logits on the GPU with Hugging Face's temperature, top-k
// and top-p warpers (no gradient), so decoding can feed the picks to the next step without a readback; and
// each pick's log-probability under the distribution drawn from, for best_of's ranking.
import { deviceInfo, getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import type { SampleOptions } from '../reference/sample.js';
import { empty, Tensor } from '../tensor.js';
import { checkFloat, contiguousData } from './launch.js';

// Threads per row: 256 on GPUs; 64 on CPU drivers, which take long to compile a wide workgroup.
const WIDTHS = { 256: { WG: '256', BLK: '16', DIGIT: '8' }, 64: { WG: '64', BLK: '8', DIGIT: '6' } } as const;
let forcedWidth: 64 | 256 | null = null;

/** Forces the threads per row of sampleLogits (null: 64 on a fallback adapter, else 256), so tests reach both. */
export function setSampleWidth(threads: 64 | 256 | null): void {
  forcedWidth = threads;
}

function checkOptions(o: SampleOptions): void {
  if (!(o.temperature > 0 && Number.isFinite(o.temperature))) throw new ValueError(`sampleLogits: temperature must be a finite number above 0, got ${o.temperature}`);
  if (!Number.isSafeInteger(o.topK) || o.topK < 0) throw new ValueError(`sampleLogits: topK must be a non-negative integer (0 turns it off), got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new ValueError(`sampleLogits: topP must be in (0, 1] (1 turns it off), got ${o.topP}`);
}

/**
 * Draws one token id per row of `logits` [B, V] (f32 or f16) with `uniforms` [B] (f32 in [0, 1)),
 * as Hugging Face's sampling: logits / temperature, top-k (ties with the k-th kept; 0 is off),
 * softmax, top-p (TopPLogitsWarper; 1 is off), then the first token, in index order, whose running
 * sum of kept probabilities exceeds u * their total. Computed in f32; returns [B] i32 on the GPU.
 * The host's float64 version is `refSampleRow`.
 * @example
 * const ids = sampleLogits(logits, tensor(new Float32Array([0.3, 0.8])), { temperature: 0.7, topK: 40, topP: 0.9 });
 */
export function sampleLogits(logits: Tensor, uniforms: Tensor, options: SampleOptions): Tensor {
  const { ids, logprobs } = sampleLogitsWithLogprobs(logits, uniforms, options);
  logprobs.dispose('unused output of sampleLogits');
  return ids;
}

/**
 * {@link sampleLogits}, with each drawn token's log-probability under the distribution it was drawn from
 * (after temperature, top-k and top-p, as vLLM V0's sampler gives it and its best_of sums): logprobs [B] f32,
 * in f32 on the GPU. The host's float64 version is `refSampledLogprob`.
 * @example
 * const { ids, logprobs } = sampleLogitsWithLogprobs(logits, uniforms, { temperature: 0.7, topK: 40, topP: 0.9 });
 */
export function sampleLogitsWithLogprobs(logits: Tensor, uniforms: Tensor, options: SampleOptions): { ids: Tensor; logprobs: Tensor } {
  checkFloat('sampleLogits', logits);
  if (logits.rank !== 2 || logits.shape[1] === 0) throw new ShapeError(`sampleLogits: logits should be [B, V] with V >= 1, got ${fmtShape(logits.shape)}`);
  const [B, V] = logits.shape as [number, number];
  if (uniforms.dtype !== 'f32') throw new DTypeError(`sampleLogits: uniforms should be f32, got ${uniforms.dtype}`);
  if (uniforms.rank !== 1 || uniforms.shape[0] !== B) throw new ShapeError(`sampleLogits: uniforms should be [${B}] (one per row of logits ${fmtShape(logits.shape)}), got ${fmtShape(uniforms.shape)}`);
  checkOptions(options);
  const ids = empty([B], 'i32');
  const logprobs = empty([B], 'f32');
  if (B === 0) return { ids, logprobs };
  const x = contiguousData('sampleLogits', logits);
  const u = contiguousData('sampleLogits', uniforms);
  const probs = empty([B, V], 'f32');
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'sample_logits', { T: logits.dtype, ...WIDTHS[forcedWidth ?? (deviceInfo()?.isFallbackAdapter ? 64 : 256)] }),
    params: packParams('sample_logits', {
      B,
      V,
      top_k: options.topK,
      top_p_on: options.topP < 1 ? 1 : 0,
      temperature: options.temperature,
      drop_mass: 1 - options.topP,
    }),
    buffers: [x.buffer('sampleLogits'), u.buffer('sampleLogits'), probs.buffer('sampleLogits'), ids.buffer('sampleLogits'), logprobs.buffer('sampleLogits')],
    workgroups: grid1d(B, 1),
    label: 'sampleLogits',
  });
  probs.dispose('scratch of sampleLogits');
  if (x !== logits) x.dispose('temporary of sampleLogits');
  if (u !== uniforms) u.dispose('temporary of sampleLogits');
  return { ids, logprobs };
}
