// config.json's `rope_scaling`: parsed and checked as transformers' rope_config_validation does (its
// "rope_type" key, or the older "type"), and written back. Browser-safe.

import { ModelConfigError, shown } from '../errors.js';

/**
 * RoPE scaling of a LLaMA config (`rope_scaling`), in camelCase:
 * - `linear` (CodeLlama-style position interpolation): inv_freq / factor.
 * - `dynamic` (NTK-aware): the base grows with the sequence length past `max_position_embeddings`;
 *   `originalMaxPositionEmbeddings` is kept when the file has it (transformers accepts and ignores it).
 * - `llama3` (Llama 3.1 / 3.2): wavelength bands around `originalMaxPositionEmbeddings` / the two factors.
 * - `yarn` (Qwen2.5's long context, DeepSeek, ...): inv_freq blended between extrapolation and interpolation
 *   by factor, and cos/sin scaled by an attention factor (see the tensor package's RopeScaling). Only the keys
 *   the file has are kept: an absent `originalMaxPositionEmbeddings` is max_position_embeddings, absent betas
 *   32 and 1, an absent `attentionFactor` follows from factor, `mscale` and `mscaleAllDim`, `truncate` true.
 */
export type LlamaRopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | { readonly type: 'dynamic'; readonly factor: number; readonly originalMaxPositionEmbeddings?: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | {
      readonly type: 'yarn';
      readonly factor: number;
      readonly originalMaxPositionEmbeddings?: number;
      readonly attentionFactor?: number;
      readonly betaFast?: number;
      readonly betaSlow?: number;
      readonly mscale?: number;
      readonly mscaleAllDim?: number;
      readonly truncate?: boolean;
    };

/** yarn's optional keys: config.json's name and LlamaRopeScaling's. */
const YARN_OPTIONAL = [
  ['original_max_position_embeddings', 'originalMaxPositionEmbeddings'],
  ['attention_factor', 'attentionFactor'],
  ['beta_fast', 'betaFast'],
  ['beta_slow', 'betaSlow'],
  ['mscale', 'mscale'],
  ['mscale_all_dim', 'mscaleAllDim'],
  ['truncate', 'truncate'],
] as const;

const SUPPORTED = '"default", "linear", "dynamic", "llama3" and "yarn"';
const KEYS: Record<string, readonly string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
  yarn: ['factor'],
};

/**
 * The scaling named by config.json's `rope_scaling` (null for absent, null, or rope_type "default"); throws
 * ModelConfigError naming `file` and rope_scaling for an unsupported type ("longrope", ...), a missing
 * required key, or a bad value (factor below 1, llama3's high_freq_factor not above low_freq_factor, yarn's
 * beta_fast below beta_slow or a non-positive attention factor).
 */
export function parseRopeScaling(file: string, raw: unknown): LlamaRopeScaling | null {
  if (raw === undefined || raw === null) return null;
  const fail = (what: string) => new ModelConfigError(file, 'rope_scaling', what);
  if (typeof raw !== 'object' || Array.isArray(raw)) throw fail(`expected null or an object such as {"rope_type": "linear", "factor": 2.0}, got ${shown(raw)}`);
  const s = raw as Record<string, unknown>;
  const type = s['rope_type'] ?? s['type'];
  if (type === undefined || type === null) throw fail(`${shown(raw)} has no "rope_type" (or "type"); supported types are ${SUPPORTED}`);
  const keys = typeof type === 'string' && Object.prototype.hasOwnProperty.call(KEYS, type) ? KEYS[type]! : undefined;
  if (keys === undefined) {
    throw fail(`rope_type ${shown(type)} is not supported; supported types are ${SUPPORTED} (remove rope_scaling for plain RoPE)`);
  }
  const missing = keys.filter((k) => s[k] === undefined || s[k] === null);
  if (missing.length > 0) throw fail(`rope_type "${type}" requires ${keys.join(', ')}; missing ${missing.join(', ')} in ${shown(raw)}`);
  if (type === 'default') return null;
  const num = (k: string, ok: (v: number) => boolean, expected: string): number => {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw fail(`${k} must be ${expected}, got ${shown(v)}`);
    return v;
  };
  const factor = num('factor', (v) => v >= 1, 'a number >= 1');
  const positiveInt = (v: number) => Number.isSafeInteger(v) && v > 0;
  if (type === 'linear') return { type, factor };
  if (type === 'dynamic') {
    if (s['original_max_position_embeddings'] === undefined || s['original_max_position_embeddings'] === null) return { type, factor };
    return { type, factor, originalMaxPositionEmbeddings: num('original_max_position_embeddings', positiveInt, 'a positive integer') };
  }
  if (type === 'yarn') return parseYarn(s, factor, num, fail);
  const lowFreqFactor = num('low_freq_factor', (v) => v > 0, 'a number > 0');
  const highFreqFactor = num('high_freq_factor', (v) => v > lowFreqFactor, `a number greater than low_freq_factor ${lowFreqFactor}`);
  const originalMaxPositionEmbeddings = num('original_max_position_embeddings', positiveInt, 'a positive integer');
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings };
}

type Yarn = Extract<LlamaRopeScaling, { type: 'yarn' }>;
type NumberKey = (k: string, ok: (v: number) => boolean, expected: string) => number;

/** yarn's optional keys, as transformers' rope_config_validation and _compute_yarn_parameters read them. */
function parseYarn(s: Record<string, unknown>, factor: number, num: NumberKey, fail: (what: string) => ModelConfigError): Yarn {
  const out: { -readonly [K in keyof Yarn]: Yarn[K] } = { type: 'yarn', factor };
  const has = (k: string) => s[k] !== undefined && s[k] !== null;
  if (has('original_max_position_embeddings')) {
    out.originalMaxPositionEmbeddings = num('original_max_position_embeddings', (v) => Number.isSafeInteger(v) && v > 0, 'a positive integer (the pre-trained context; remove it to use max_position_embeddings)');
  }
  if (has('attention_factor')) out.attentionFactor = num('attention_factor', (v) => v > 0, 'a number > 0 (remove it for the default 0.1 ln(factor) + 1)');
  // transformers reads them with `or`: 0 takes the default, as absent does.
  if (has('beta_fast')) out.betaFast = num('beta_fast', (v) => v >= 0, 'a number >= 0 (default 32)');
  if (has('beta_slow')) out.betaSlow = num('beta_slow', (v) => v >= 0, 'a number >= 0 (default 1)');
  if ((out.betaFast || 32) < (out.betaSlow || 1)) {
    throw fail(`beta_fast ${out.betaFast ?? '(default 32)'} must not be below beta_slow ${out.betaSlow ?? '(default 1)'}`);
  }
  if (has('mscale')) out.mscale = num('mscale', () => true, 'a number');
  if (has('mscale_all_dim')) out.mscaleAllDim = num('mscale_all_dim', () => true, 'a number');
  if (has('truncate')) {
    if (typeof s['truncate'] !== 'boolean') throw fail(`truncate must be true or false, got ${shown(s['truncate'])}`);
    out.truncate = s['truncate'];
  }
  if (out.attentionFactor === undefined && out.mscale && out.mscaleAllDim) {
    const m = (k: number) => (factor <= 1 ? 1 : 0.1 * k * Math.log(factor) + 1);
    const attention = m(out.mscale) / m(out.mscaleAllDim);
    if (!(Number.isFinite(attention) && attention > 0)) {
      throw fail(`mscale ${out.mscale} and mscale_all_dim ${out.mscaleAllDim} give the attention factor ${attention}; it must be a finite number > 0 (set attention_factor, or remove mscale)`);
    }
  }
  return out;
}

/**
 * config.json's `rope_scaling` for `scaling`: linear and dynamic under the older "type" key (which every
 * transformers version reads), llama3 and yarn under "rope_type"; yarn with the keys it was read with.
 */
export function ropeScalingJson(scaling: LlamaRopeScaling | null): Record<string, unknown> | null {
  if (scaling === null) return null;
  if (scaling.type === 'linear') return { type: 'linear', factor: scaling.factor };
  if (scaling.type === 'dynamic') {
    const out: Record<string, unknown> = { type: 'dynamic', factor: scaling.factor };
    if (scaling.originalMaxPositionEmbeddings !== undefined) out['original_max_position_embeddings'] = scaling.originalMaxPositionEmbeddings;
    return out;
  }
  if (scaling.type === 'yarn') {
    const out: Record<string, unknown> = { rope_type: 'yarn', factor: scaling.factor };
    for (const [key, field] of YARN_OPTIONAL) if (scaling[field] !== undefined) out[key] = scaling[field];
    return out;
  }
  return {
    rope_type: 'llama3',
    factor: scaling.factor,
    low_freq_factor: scaling.lowFreqFactor,
    high_freq_factor: scaling.highFreqFactor,
    original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
  };
}
