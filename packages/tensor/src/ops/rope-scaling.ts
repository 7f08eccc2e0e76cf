// RoPE frequencies: the base theta and Hugging Face's rope_scaling types ("linear", "llama3", "dynamic",
// "yarn"), turned into inv_freq and the factor on cos/sin with the float32 roundings torch applies in
// transformers' modeling_rope_utils.
import { ValueError } from '../errors.js';

/**
 * A scaling of RoPE's inverse frequencies, Hugging Face `rope_scaling` in camelCase:
 * - `linear`: inv_freq / factor (position interpolation, CodeLlama-style).
 * - `llama3`: Llama 3.1's bands: wavelengths 2π / inv_freq above originalMaxPositionEmbeddings / lowFreqFactor
 *   are divided by factor, those below originalMaxPositionEmbeddings / highFreqFactor kept, those between
 *   interpolated smoothly.
 * - `dynamic`: NTK-aware base theta ((factor seqLen / maxPositionEmbeddings) - (factor - 1))^(D / (D - 2))
 *   for the sequence length seqLen the frequencies are computed for (the largest position + 1). With
 *   seqLen <= maxPositionEmbeddings this is Hugging Face's initial base (in float64, which for most
 *   factors is theta itself); above it, its regrown base in float32 steps.
 * - `yarn`: YaRN (transformers 4.56 and later): each inverse frequency blends 1 / theta^(2j/D) (extrapolation)
 *   and the same divided by factor (interpolation) by a ramp over j between the dimensions whose wavelengths
 *   turn betaFast (default 32) and betaSlow (default 1) times in originalMaxPositionEmbeddings positions
 *   (floor / ceil of them unless truncate is false, then clamped to [0, D - 1]). cos and sin are multiplied
 *   by the attention factor (see {@link ropeAttentionScaling}), so q.k grows by its square.
 * The other types leave cos/sin as they are (transformers' attention_scaling is 1 for them).
 */
export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | { readonly type: 'dynamic'; readonly factor: number; readonly maxPositionEmbeddings: number; readonly seqLen: number }
  | {
      readonly type: 'yarn';
      readonly factor: number;
      /** The pre-trained context the correction range is measured against (transformers falls back to max_position_embeddings). */
      readonly originalMaxPositionEmbeddings: number;
      /** Rotations bounding the extrapolated dimensions; absent or 0: 32. */
      readonly betaFast?: number;
      /** Rotations bounding the interpolated dimensions; absent or 0: 1. */
      readonly betaSlow?: number;
      /** Whether the correction range is rounded out to whole dimensions; default true. */
      readonly truncate?: boolean;
      /** The factor on cos and sin; absent: from factor, mscale and mscaleAllDim. */
      readonly attentionFactor?: number;
      readonly mscale?: number;
      readonly mscaleAllDim?: number;
    };

/** RoPE's frequencies: base `theta` and an optional scaling. */
export interface RopeSpec {
  readonly theta: number;
  readonly scaling?: RopeScaling | null;
}

/** What rope and ropeCache accept for the frequencies: a bare theta (no scaling) or a spec. */
export type RopeFrequencies = number | RopeSpec;

const positive = (v: number) => typeof v === 'number' && Number.isFinite(v) && v > 0;

/** The spec for `freq` (a bare theta is unscaled), checked; throws ValueError naming `op` and the field. */
export function ropeSpec(op: string, freq: RopeFrequencies): RopeSpec {
  const spec: RopeSpec = typeof freq === 'number' ? { theta: freq } : freq;
  if (!positive(spec.theta)) throw new ValueError(`${op}: theta must be a finite number > 0, got ${spec.theta}`);
  const s = spec.scaling;
  if (s === undefined || s === null) return spec;
  const bad = (what: string) => new ValueError(`${op}: rope scaling ${JSON.stringify(s)}: ${what}`);
  if (!(Number.isFinite(s.factor) && s.factor >= 1)) throw bad(`factor must be a number >= 1, got ${s.factor}`);
  if (s.type === 'linear') return spec;
  if (s.type === 'llama3') {
    if (!positive(s.lowFreqFactor) || !positive(s.highFreqFactor) || s.highFreqFactor <= s.lowFreqFactor) {
      throw bad(`lowFreqFactor and highFreqFactor must be numbers > 0 with highFreqFactor > lowFreqFactor, got ${s.lowFreqFactor} and ${s.highFreqFactor}`);
    }
    if (!Number.isSafeInteger(s.originalMaxPositionEmbeddings) || s.originalMaxPositionEmbeddings <= 0) {
      throw bad(`originalMaxPositionEmbeddings must be a positive integer, got ${s.originalMaxPositionEmbeddings}`);
    }
    return spec;
  }
  if (s.type === 'dynamic') {
    if (!Number.isSafeInteger(s.maxPositionEmbeddings) || s.maxPositionEmbeddings <= 0) throw bad(`maxPositionEmbeddings must be a positive integer, got ${s.maxPositionEmbeddings}`);
    if (!Number.isSafeInteger(s.seqLen) || s.seqLen < 0) throw bad(`seqLen must be an integer >= 0, got ${s.seqLen}`);
    return spec;
  }
  if (s.type === 'yarn') {
    if (!Number.isSafeInteger(s.originalMaxPositionEmbeddings) || s.originalMaxPositionEmbeddings <= 0) {
      throw bad(`originalMaxPositionEmbeddings must be a positive integer, got ${s.originalMaxPositionEmbeddings}`);
    }
    for (const k of ['betaFast', 'betaSlow'] as const) {
      const v = s[k];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw bad(`${k} must be a number >= 0 (0: the default), got ${v}`);
    }
    for (const k of ['mscale', 'mscaleAllDim'] as const) {
      const v = s[k];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v))) throw bad(`${k} must be a finite number, got ${v}`);
    }
    if (s.truncate !== undefined && typeof s.truncate !== 'boolean') throw bad(`truncate must be a boolean, got ${s.truncate}`);
    const attention = ropeAttentionScaling(spec);
    if (!positive(attention)) throw bad(`the attention factor must be a finite number > 0, got ${attention}`);
    return spec;
  }
  throw bad(`type must be "linear", "llama3", "dynamic" or "yarn", got ${JSON.stringify((s as { type: unknown }).type)}`);
}

/** YaRN's get_mscale: 0.1 mscale ln(factor) + 1, or 1 for factor <= 1. */
function yarnMscale(factor: number, mscale = 1): number {
  return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
}

/**
 * The factor transformers multiplies cos and sin by (attention_scaling), in float64: 1 except for YaRN, whose
 * attentionFactor is given or else 0.1 ln(factor) + 1, or with both mscale and mscaleAllDim non-zero
 * (0.1 mscale ln(factor) + 1) / (0.1 mscaleAllDim ln(factor) + 1); 1 for factor <= 1.
 */
export function ropeAttentionScaling(freq: RopeFrequencies): number {
  const s = typeof freq === 'number' ? null : freq.scaling;
  if (s?.type !== 'yarn') return 1;
  if (s.attentionFactor !== undefined) return s.attentionFactor;
  if (s.mscale && s.mscaleAllDim) return yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim);
  return yarnMscale(s.factor);
}

/** A string naming the frequencies `spec` gives, for table caches (two specs with one key give equal tables). */
export function ropeSpecKey(spec: RopeSpec): string {
  const s = spec.scaling;
  if (s === undefined || s === null) return `${spec.theta}`;
  if (s.type === 'linear') return `${spec.theta}|linear|${s.factor}`;
  if (s.type === 'llama3') return `${spec.theta}|llama3|${s.factor}|${s.lowFreqFactor}|${s.highFreqFactor}|${s.originalMaxPositionEmbeddings}`;
  if (s.type === 'yarn') {
    return `${spec.theta}|yarn|${s.factor}|${s.originalMaxPositionEmbeddings}|${s.betaFast || 32}|${s.betaSlow || 1}|${s.truncate ?? true}|${ropeAttentionScaling(spec)}`;
  }
  // Every seqLen up to maxPositionEmbeddings gives the initial base.
  return `${spec.theta}|dynamic|${s.factor}|${s.maxPositionEmbeddings}|${Math.max(s.seqLen, s.maxPositionEmbeddings)}`;
}

const f = Math.fround;

/** 1 / base^(2j / D) as `1.0 / (base ** (arange(0, D, 2).float() / D))`: base cast to f32, the reciprocal times 1. */
function unscaled(D: number, base: number): Float32Array {
  const out = new Float32Array(D / 2);
  for (let j = 0; j < D / 2; j++) out[j] = f(1 / f(Math.pow(f(base), f((2 * j) / D))));
  return out;
}

/** Llama 3.1's banded scaling of `inv` in place; torch's `scalar / t` is reciprocal(t) * scalar, scalars are cast to f32. */
function llama3(inv: Float32Array, s: Extract<RopeScaling, { type: 'llama3' }>): void {
  const old = s.originalMaxPositionEmbeddings;
  const lowWavelen = f(old / s.lowFreqFactor);
  const highWavelen = f(old / s.highFreqFactor);
  const factor = f(s.factor);
  const low = f(s.lowFreqFactor);
  const span = f(s.highFreqFactor - s.lowFreqFactor);
  for (let j = 0; j < inv.length; j++) {
    const wavelen = f(f(1 / inv[j]!) * f(2 * Math.PI));
    const scaled = wavelen > lowWavelen ? f(inv[j]! / factor) : inv[j]!;
    if (wavelen < highWavelen || wavelen > lowWavelen) {
      inv[j] = scaled;
      continue;
    }
    const smooth = f(f(f(f(1 / wavelen) * f(old)) - low) / span);
    inv[j] = f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  }
}

/** The NTK-aware base of dynamic scaling for `seqLen`, as transformers computes it (float64 at init, float32 once grown). */
function dynamicBase(D: number, theta: number, s: Extract<RopeScaling, { type: 'dynamic' }>): number {
  const max = s.maxPositionEmbeddings;
  const exponent = D / (D - 2);
  if (s.seqLen <= max) return theta * Math.pow((s.factor * max) / max - (s.factor - 1), exponent);
  const ratio = f(f(f(f(s.factor) * f(s.seqLen)) / f(max)) - f(s.factor - 1));
  return f(f(theta) * f(Math.pow(ratio, exponent)));
}

/**
 * YaRN's inv_freq in torch's float32 steps: the correction range [low, high] in float64 (python floats),
 * ramp = clamp((j - low) / (high - low), 0, 1) and e = 1 - ramp in float32, then
 * inv = interpolation (1 - e) + extrapolation e with interpolation = 1 / (factor pos) and extrapolation = 1 / pos.
 */
function yarn(D: number, theta: number, s: Extract<RopeScaling, { type: 'yarn' }>): Float32Array {
  const correctionDim = (rotations: number) => (D * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(s.betaFast || 32);
  let high = correctionDim(s.betaSlow || 1);
  if (s.truncate ?? true) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, D - 1);
  if (low === high) high += 0.001;
  const [lowF, span, factor] = [f(low), f(high - low), f(s.factor)];
  const inv = new Float32Array(D / 2);
  for (let j = 0; j < D / 2; j++) {
    const pos = f(Math.pow(f(theta), f((2 * j) / D)));
    const ramp = Math.min(Math.max(f(f(j - lowF) / span), 0), 1);
    const extrapolated = f(1 - ramp);
    const interpolation = f(1 / f(factor * pos));
    inv[j] = f(f(interpolation * f(1 - extrapolated)) + f(f(1 / pos) * extrapolated));
  }
  return inv;
}

/**
 * inv_freq [D/2] of RoPE with base theta and optional Hugging Face scaling, in torch's float32 steps:
 * inv_freq[j] = 1 / theta^(2j / D), then divided by factor (linear), banded (llama3), with the
 * dynamic NTK base in place of theta (dynamic), or blended with its interpolation (yarn).
 * @example
 * ropeInvFreq(128, { theta: 500000, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } });
 */
export function ropeInvFreq(D: number, freq: RopeFrequencies): Float32Array {
  const spec = ropeSpec('ropeInvFreq', freq);
  const s = spec.scaling;
  if (s?.type === 'dynamic') return unscaled(D, dynamicBase(D, spec.theta, s));
  if (s?.type === 'yarn') return yarn(D, spec.theta, s);
  const inv = unscaled(D, spec.theta);
  if (s?.type === 'linear') {
    const factor = f(s.factor);
    for (let j = 0; j < inv.length; j++) inv[j] = f(inv[j]! / factor);
  } else if (s?.type === 'llama3') llama3(inv, s);
  return inv;
}
