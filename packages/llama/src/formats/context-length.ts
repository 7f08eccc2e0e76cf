// The context length a LLaMA config allows, as vLLM derives its max_model_len from config.json
// (max_position_embeddings, stretched by rope_scaling), and a user-given length checked against it
// as vLLM checks --max-model-len. Browser-safe.

import { ModelError } from '../errors.js';
import type { LlamaConfig } from './config.js';

type ContextConfig = Pick<LlamaConfig, 'maxPositionEmbeddings' | 'ropeScaling'>;

/**
 * The longest sequence (prompt plus new tokens) `config` is meant for, as vLLM's
 * `_get_and_verify_max_len` derives it: max_position_embeddings (the only one of vLLM's length keys a
 * LLaMA, Mistral or Qwen2 config.json has) times rope_scaling's factor for "linear", "dynamic" and
 * "yarn", yarn's measured from its original_max_position_embeddings (max_position_embeddings where
 * absent, as transformers reads it); "llama3" configs already give the stretched length (Llama 3.1:
 * 131072) and are not multiplied. Rounded down, as vLLM's int().
 *
 * @example
 * // Qwen2.5 with {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
 * derivedMaxModelLen(config); // 131072
 */
export function derivedMaxModelLen(config: ContextConfig): number {
  const s = config.ropeScaling;
  if (s === null || s.type === 'llama3') return config.maxPositionEmbeddings;
  const from = s.type === 'yarn' ? (s.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings) : config.maxPositionEmbeddings;
  return Math.floor(from * s.factor);
}

/**
 * Where {@link derivedMaxModelLen}'s length comes from, for messages: "max_position_embeddings 32768"
 * or "original_max_position_embeddings 32768 × rope_scaling "yarn" factor 4".
 */
export function describeMaxModelLen(config: ContextConfig): string {
  const s = config.ropeScaling;
  if (s === null) return `max_position_embeddings ${config.maxPositionEmbeddings}`;
  if (s.type === 'llama3') return `max_position_embeddings ${config.maxPositionEmbeddings}, which rope_scaling "llama3" does not stretch`;
  const from = s.type === 'yarn' && s.originalMaxPositionEmbeddings !== undefined ? `original_max_position_embeddings ${s.originalMaxPositionEmbeddings}` : `max_position_embeddings ${config.maxPositionEmbeddings}`;
  return `${from} × rope_scaling "${s.type}" factor ${s.factor}`;
}

/**
 * `maxModelLen` checked against `config`'s {@link derivedMaxModelLen}, as vLLM checks --max-model-len:
 * a positive integer, at most the derived length unless `allowLong` (vLLM's
 * VLLM_ALLOW_LONG_MAX_MODEL_LEN) accepts positions the model was never trained or scaled for.
 * Throws ModelError naming the option and the CLI flag otherwise.
 */
export function checkedMaxModelLen(config: ContextConfig, maxModelLen: number, allowLong: boolean): number {
  if (!Number.isSafeInteger(maxModelLen) || maxModelLen <= 0) {
    throw new ModelError(`maxModelLen (--max-model-len) should be a positive integer, got ${maxModelLen}`);
  }
  const derived = derivedMaxModelLen(config);
  if (maxModelLen > derived && !allowLong) {
    throw new ModelError(
      `maxModelLen ${maxModelLen} (--max-model-len) is beyond the ${derived} tokens config.json allows (${describeMaxModelLen(config)}); ` +
        `lower it to ${derived} or less, or allow it with allowLongMaxModelLen (--allow-long-max-model-len) knowing that positions past ${derived} ` +
        'were never trained nor covered by rope_scaling, so what the model makes of them may be meaningless',
    );
  }
  return maxModelLen;
}
