// config.json's `rope_scaling`: parsed and checked as transformers' rope_config_validation does (its
// "rope_type" key, or the older "type"), and written back. Browser-safe.

import { ModelConfigError } from '../errors.js';

/**
 * RoPE scaling of a LLaMA config (`rope_scaling`), in camelCase:
 * - `linear` (CodeLlama-style position interpolation): inv_freq / factor.
 * - `dynamic` (NTK-aware): the base grows with the sequence length past `max_position_embeddings`;
 *   `originalMaxPositionEmbeddings` is kept when the file has it (transformers accepts and ignores it).
 * - `llama3` (Llama 3.1 / 3.2): wavelength bands around `originalMaxPositionEmbeddings` / the two factors.
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
    };

const SUPPORTED = '"default", "linear", "dynamic" and "llama3"';
const KEYS: Record<string, readonly string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
};

/**
 * The scaling named by config.json's `rope_scaling` (null for absent, null, or rope_type "default"); throws
 * ModelConfigError naming `file` and rope_scaling for an unsupported type ("yarn", "longrope", ...),
 * a missing required key, or a bad value (factor below 1, llama3's high_freq_factor not above low_freq_factor).
 */
export function parseRopeScaling(file: string, raw: unknown): LlamaRopeScaling | null {
  if (raw === undefined || raw === null) return null;
  const fail = (what: string) => new ModelConfigError(file, 'rope_scaling', what);
  if (typeof raw !== 'object' || Array.isArray(raw)) throw fail(`expected null or an object such as {"rope_type": "linear", "factor": 2.0}, got ${JSON.stringify(raw)}`);
  const s = raw as Record<string, unknown>;
  const type = s['rope_type'] ?? s['type'];
  if (type === undefined || type === null) throw fail(`${JSON.stringify(raw)} has no "rope_type" (or "type"); supported types are ${SUPPORTED}`);
  const keys = typeof type === 'string' && Object.prototype.hasOwnProperty.call(KEYS, type) ? KEYS[type]! : undefined;
  if (keys === undefined) {
    throw fail(`rope_type ${JSON.stringify(type)} is not supported; supported types are ${SUPPORTED} (remove rope_scaling for plain RoPE)`);
  }
  const missing = keys.filter((k) => s[k] === undefined || s[k] === null);
  if (missing.length > 0) throw fail(`rope_type "${type}" requires ${keys.join(', ')}; missing ${missing.join(', ')} in ${JSON.stringify(raw)}`);
  if (type === 'default') return null;
  const num = (k: string, ok: (v: number) => boolean, expected: string): number => {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw fail(`${k} must be ${expected}, got ${JSON.stringify(v)}`);
    return v;
  };
  const factor = num('factor', (v) => v >= 1, 'a number >= 1');
  const positiveInt = (v: number) => Number.isSafeInteger(v) && v > 0;
  if (type === 'linear') return { type, factor };
  if (type === 'dynamic') {
    if (s['original_max_position_embeddings'] === undefined || s['original_max_position_embeddings'] === null) return { type, factor };
    return { type, factor, originalMaxPositionEmbeddings: num('original_max_position_embeddings', positiveInt, 'a positive integer') };
  }
  const lowFreqFactor = num('low_freq_factor', (v) => v > 0, 'a number > 0');
  const highFreqFactor = num('high_freq_factor', (v) => v > lowFreqFactor, `a number greater than low_freq_factor ${lowFreqFactor}`);
  const originalMaxPositionEmbeddings = num('original_max_position_embeddings', positiveInt, 'a positive integer');
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings };
}

/**
 * config.json's `rope_scaling` for `scaling`: linear and dynamic under the older "type" key (which every
 * transformers version reads), llama3 under "rope_type".
 */
export function ropeScalingJson(scaling: LlamaRopeScaling | null): Record<string, unknown> | null {
  if (scaling === null) return null;
  if (scaling.type === 'linear') return { type: 'linear', factor: scaling.factor };
  if (scaling.type === 'dynamic') {
    const out: Record<string, unknown> = { type: 'dynamic', factor: scaling.factor };
    if (scaling.originalMaxPositionEmbeddings !== undefined) out['original_max_position_embeddings'] = scaling.originalMaxPositionEmbeddings;
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
