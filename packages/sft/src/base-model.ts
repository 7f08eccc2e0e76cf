// The base model side of training in Node: a Hugging Face LLaMA folder or the built-in tiny demo
// model with LLaMA's tokenizer from this package's assets, and an adapter loaded into it with its own tokenizer
// where it brings its own vocabulary.
import { ModelError, checkedMaxModelLen, finishInterruptedSave, llamaTokenizerDir, loadAdapter, loadLlama, removeLora, loadLlamaConfig, loadTokenizer, quantizeModel, type LlamaConfig, type LlamaConfigOverrides, type LlamaModel, type Quantization, type TokenizerLoadOptions } from '@huatuo/llama';
import { hasF16, type FloatDType } from '@huatuo/tensor';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from './errors.js';
import { adapterTokenizerOptions, type AdapterTokenizerFiles } from './adapter-tokenizer.js';
import { baseModelOf, demoBaseModel, type BaseModel } from './lora-model.js';

/** Options of {@link loadBaseModel}. */
export interface BaseModelOptions {
  /** Changes to the demo model's `tiny` preset (sizes, layers), e.g. a smaller model for tests; ignored with a folder. */
  demoConfig?: LlamaConfigOverrides;
  /** Quantize the decoder projections while loading (`--quantize`); default 'none'. */
  quantize?: Quantization;
  /**
   * Threads quantizing a folder's projections while it loads (`--quantize-threads`; loadLlama's
   * quantizeThreads): default the cores less one, at most 8. The demo model is quantized in place.
   */
  quantizeThreads?: number;
  /**
   * Dtype of the base weights (and so of the activations): default f16 for a folder where the
   * adapter has shader-f16, else f32; f32 for the demo model. Training chooses it from --precision,
   * generate, eval, merge and serve from --base-dtype.
   */
  dtype?: FloatDType;
  /**
   * The longest sequence the model is used for (`--max-model-len`, vLLM's max_model_len; the model's maxModelLen):
   * default config.json's max_position_embeddings stretched by rope_scaling. Refused above that unless
   * `allowLongMaxModelLen` (`--allow-long-max-model-len`).
   */
  maxModelLen?: number;
  /** Accept a `maxModelLen` above config.json's length, for positions the model was never trained for. */
  allowLongMaxModelLen?: boolean;
  /**
   * Run the regular expressions of the folder's tokenizer.json as written, also those refused at load for want of a
   * proof that they match in linear time (`--trust-tokenizer-patterns`; see TokenizerLoadOptions).
   */
  trustTokenizerPatterns?: boolean;
}

/** `maxModelLen` checked against `config` as ConfigError naming --max-model-len (undefined where not given). */
function checkMaxModelLen(config: LlamaConfig, options: BaseModelOptions): number | undefined {
  if (options.maxModelLen === undefined) return undefined;
  try {
    return checkedMaxModelLen(config, options.maxModelLen, options.allowLongMaxModelLen ?? false);
  } catch (e) {
    if (e instanceof ModelError) throw new ConfigError('--max-model-len', e.message);
    throw e;
  }
}

/** `model` with BaseModelOptions' maxModelLen set. */
function withMaxModelLen<T extends { model: LlamaModel }>(base: T, options: BaseModelOptions): T {
  const maxModelLen = checkMaxModelLen(base.model.config, options);
  if (maxModelLen !== undefined) base.model.setMaxModelLen(maxModelLen, { allowLong: options.allowLongMaxModelLen ?? false });
  return base;
}

/** The `--base-dtype` value as a {@link BaseModelOptions.dtype}: undefined for 'auto' (or not given). */
export function baseDtypeOption(value: unknown): FloatDType | undefined {
  if (value === undefined || value === 'auto') return undefined;
  if (value === 'f32' || value === 'f16') return value;
  throw new ConfigError('--base-dtype', `expected auto, f32 or f16, got ${JSON.stringify(value)}`);
}

/**
 * Loads a Hugging Face LLaMA folder (f16 weights where the adapter has shader-f16, unless `dtype`
 * says otherwise), or the demo model;
 * `quantize` stores the decoder projections in int8 or NF4.
 * @example const base = await loadBaseModel(null, undefined, { demoConfig: { hiddenSize: 32, numHiddenLayers: 1 } });
 */
export async function loadBaseModel(folder: string | null, onProgress?: (fraction: number) => void, options: BaseModelOptions = {}): Promise<BaseModel> {
  const quantize = options.quantize ?? 'none';
  if (options.dtype === 'f16' && !hasF16()) throw new ConfigError('--precision', 'f16 weights need the adapter feature shader-f16, which this adapter lacks; use --precision f32 (train) or --base-dtype f32');
  if (folder === null) {
    const demo = demoBaseModel(await loadTokenizer(llamaTokenizerDir()), options.demoConfig ?? {}, options.dtype ?? 'f32');
    if (quantize !== 'none') await quantizeModel(demo.model, quantize);
    return withMaxModelLen(demo, options);
  }
  if (!existsSync(folder)) throw new ConfigError('--base', `${folder} does not exist; pass a Hugging Face LLaMA folder (config.json, *.safetensors or pytorch_model*.bin, tokenizer)`);
  if (!statSync(folder).isDirectory()) {
    throw new ConfigError('--base', `${folder} is a file; pass the folder that holds it, a Hugging Face LLaMA folder (config.json, *.safetensors or pytorch_model*.bin, tokenizer)`);
  }
  // The tokenizer is read before loadLlama, which would complete an interrupted save too late for it.
  await finishInterruptedSave(folder, { keepUncommitted: true });
  // Refused from config.json before any weight loads.
  if (options.maxModelLen !== undefined && existsSync(join(folder, 'config.json'))) checkMaxModelLen(await loadLlamaConfig(folder), options);
  const tokenizer = await loadTokenizer(folder, { trustTokenizerPatterns: options.trustTokenizerPatterns ?? false });
  const model = await loadLlama(folder, {
    dtype: options.dtype ?? (hasF16() ? 'f16' : 'f32'),
    quantize,
    quantizeThreads: options.quantizeThreads,
    onProgress: onProgress ? (p) => onProgress(p.totalBytes ? p.bytesRead / p.totalBytes : 0) : undefined,
  });
  return withMaxModelLen(baseModelOf(model, tokenizer, folder, false), options);
}

/**
 * Loads the PEFT adapter in `dir` into the base model (see loadAdapter), replacing any adapter. An adapter that brings
 * its own vocabulary (trained copies of embed_tokens and lm_head in modules_to_save, on a vocabulary resized as
 * Chinese-LLaMA-Alpaca's) needs the tokenizer it was trained with, which such adapters ship in their folder: it is
 * `base.tokenizer` while the adapter is attached (see adapterTokenizerOptions). The vocabulary is compared with the
 * base's own, not with a previous adapter's, so an adapter on the base's vocabulary loaded after a resized one brings the
 * base's tokenizer back, as removing the adapter (removeLora) does.
 * `options.trustTokenizerPatterns` runs the regular expressions of that tokenizer.json as written (`--trust-tokenizer-patterns`).
 * Saving the adapter (saveAdapter, a run's output folder and checkpoints) writes that tokenizer's files back.
 * Returns the folder whose tokenizer (and chat template) is now in use: `dir`, or null for the base's own.
 * @throws ConfigError naming `flag` (default --adapter) when the vocabulary changes and `dir` holds no tokenizer, or a
 * tokenizer with more pieces than the adapter's vocabulary.
 * @example const tokenizerDir = (await loadAdapterWithTokenizer(base, 'chinese-alpaca-lora-7b')) ?? base.name;
 */
export async function loadAdapterWithTokenizer(base: BaseModel, dir: string, options: TokenizerLoadOptions = {}, flag = '--adapter'): Promise<string | null> {
  await loadAdapter(base.model, dir, adapterTokenizerOptions(folderTokenizerFiles(dir, flag), options));
  return base.model.savedModules.tokenizer === null ? null : dir;
}

/** The tokenizer files of the adapter folder `dir`, a refusal naming `flag`. */
function folderTokenizerFiles(dir: string, flag: string): AdapterTokenizerFiles {
  return {
    read: async (file) => (existsSync(join(dir, file)) ? new Uint8Array(await readFile(join(dir, file))) : undefined),
    where: dir,
    whenMissing: `copy the tokenizer the adapter was trained with into ${dir}`,
    refusal: (message) => new ConfigError(flag, message),
  };
}

/**
 * Removes the adapter, as removeLora does: the base's own embed_tokens, lm_head, vocabulary and tokenizer are used again
 * (`base.tokenizer` is the base's where an adapter had brought its own).
 * @example removeAdapterWithTokenizer(base); // base.tokenizer is the base folder's again
 */
export function removeAdapterWithTokenizer(base: BaseModel): void {
  removeLora(base.model);
}
