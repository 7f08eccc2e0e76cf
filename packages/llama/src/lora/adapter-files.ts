// PEFT adapter files as bytes: adapter_config.json and adapter_model.safetensors written to
// memory and read (safetensors or PyTorch .bin) from any byte source, with the tokenizer files of an
// adapter that brings its own vocabulary, so Node folders and browser downloads/uploads share them.

import { AdapterError, ModelError } from '../errors.js';
import { adapterTensorsToWrite, attachCheckedAdapter, checkAdapter, checkedSavedModules, type CheckedAdapter } from './lora.js';
import { parsePeftConfig, toPeftConfigJson } from './peft-config.js';
import { peftFieldNames } from './lora-config.js';
import { loraModules } from './lora-targets.js';
import type { LlamaModel } from '../model/model.js';
import { openTensorFile } from '../formats/tensor-file.js';
import { serializeSafetensors } from '../formats/safetensors-write.js';
import type { ByteSource } from '../formats/source.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { tokenizerFileNames, type TokenizerFileBytes } from '../tokenizers/tokenizer-files.js';

/** PEFT's adapter file names. */
export const adapterConfigName = 'adapter_config.json';
export const adapterWeightsName = 'adapter_model.safetensors';
/** The older PEFT weights file (torch.save), read when no safetensors file is present. */
export const adapterTorchWeightsName = 'adapter_model.bin';

/** The files of a PEFT adapter, as bytes. */
export interface AdapterFiles {
  /** adapter_config.json (UTF-8 JSON, 2-space indented, newline at the end). */
  config: string;
  /** adapter_model.safetensors (f32, PEFT keys, metadata format "pt"). */
  weights: Uint8Array<ArrayBuffer>;
  /**
   * The tokenizer files of an adapter that brings its own vocabulary, by name, as they were loaded (the model's
   * `savedModules.tokenizerFiles`); empty for an adapter on the base's vocabulary, whose tokenizer is the base's.
   */
  tokenizer: TokenizerFileBytes;
}

/** The tokenizer of an adapter's own vocabulary and the files it was read from, which saving the adapter writes back. */
export interface AdapterTokenizer {
  readonly tokenizer: Tokenizer;
  /** Its files by name (tokenizer.json, tokenizer.model, tokenizer_config.json, ...; see tokenizerFileNames), as read. */
  readonly files: TokenizerFileBytes;
}

/**
 * The adapter as PEFT's save_pretrained writes it, byte for byte what `saveAdapter` puts in a folder, with the tokenizer
 * files of an adapter that brings its own vocabulary, as transformers' Trainer saves the tokenizer beside the adapter.
 *
 * @example
 * const { config, weights } = await serializeAdapter(model, 'huatuo-webgpu/tiny-llama-demo');
 */
export async function serializeAdapter(model: LlamaModel, baseModel = ''): Promise<AdapterFiles> {
  if (model.loraConfig === null) throw new ModelError('serializeAdapter: the model has no adapter; call applyLora first');
  const tensors = await Promise.all(
    adapterTensorsToWrite(model).map(async (t) => ({ ...t, data: typeof t.data === 'function' ? await t.data() : t.data })),
  );
  return { config: adapterConfigText(model, baseModel), weights: serializeSafetensors(tensors, { metadata: { format: 'pt' } }), tokenizer: model.savedModules.tokenizerFiles ?? new Map() };
}

/**
 * The tokenizer files to remove from the folder `dir` (holding the files `names`, read by `read`) before the model's
 * adapter is saved into it. An adapter on the base's vocabulary writes no tokenizer and removes none. One that brings its
 * own vocabulary writes its tokenizer files, and any other file of tokenizerFileNames left beside them would be read with
 * them (a tokenizer.json before the adapter's tokenizer.model): in an earlier adapter's folder (holding
 * adapter_config.json, which the save replaces) those are that adapter's and are returned for removal; any other folder
 * holding a tokenizer file that the adapter's would not be byte for byte (a model's or a tokenizer's folder) is refused.
 *
 * @throws ModelError naming the folder and its files, before anything is written.
 */
export async function staleTokenizerFiles(model: LlamaModel, dir: string, names: readonly string[], read: (name: string) => Promise<Uint8Array>): Promise<string[]> {
  const own = model.savedModules.tokenizerFiles;
  if (own == null || own.size === 0) return [];
  const present = tokenizerFileNames.filter((name) => names.includes(name));
  if (names.includes(adapterConfigName)) return present.filter((name) => !own.has(name));
  const conflicting: string[] = [];
  for (const name of present) {
    const mine = own.get(name);
    if (mine === undefined || !sameBytes(mine, await read(name))) conflicting.push(name);
  }
  if (conflicting.length === 0) return [];
  const listed = conflicting.join(', ');
  throw new ModelError(
    `${dir} holds ${listed} but no ${adapterConfigName}, so it is not an adapter's folder; the adapter brings its own vocabulary and is saved ` +
      `with its tokenizer (${[...own.keys()].join(', ')}), which would be read with ${listed} or in their place. Nothing was written: save it into an ` +
      `empty folder, or move ${listed} out of ${dir}`,
  );
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** adapter_config.json's text for the model's adapter. */
export function adapterConfigText(model: LlamaModel, baseModel = ''): string {
  if (model.loraConfig === null) throw new ModelError('adapterConfigText: the model has no adapter; call applyLora first');
  return `${JSON.stringify(toPeftConfigJson(model.loraConfig, baseModel), null, 2)}\n`;
}

/** Options of {@link loadAdapterFromFiles} and loadAdapter. */
export interface LoadAdapterOptions {
  /**
   * Called once the adapter is read and checked, before the model changes (e.g. to check a tokenizer against
   * `adapter.vocabSize`): an error it throws leaves the model as it was.
   */
  readonly beforeAttach?: (adapter: CheckedAdapter) => void | Promise<void>;
  /**
   * The tokenizer of the adapter's own vocabulary, asked for once the adapter is read and checked (after `beforeAttach`),
   * before the model changes, where its trained embed_tokens resizes the vocabulary (`adapter.vocabSize` is not
   * `adapter.baseVocabSize`; Chinese-LLaMA-Alpaca's adapters ship it beside their weights), with the files it was read
   * from. Both are kept in the model's `savedModules` while the adapter is attached (saving the adapter writes the files
   * back), and go with it. An error it throws leaves the model as it was.
   */
  readonly adapterTokenizer?: (adapter: CheckedAdapter) => Promise<AdapterTokenizer>;
}

/**
 * Loads a PEFT adapter into the model (replacing any adapter) from its config text and its
 * weights, checking every key and shape. The weights are adapter_model.safetensors or, told apart by
 * their bytes, the older adapter_model.bin (read without running its pickle). `configName` names the config in errors.
 * All or nothing: the adapter is read, checked and uploaded before the previous one is removed, so on any
 * error the model computes as before (its previous adapter, if any, still attached).
 *
 * @example
 * await loadAdapterFromFiles(model, await configFile.text(), 'adapter_config.json', blobSource(weightsFile));
 */
export async function loadAdapterFromFiles(model: LlamaModel, configText: string, configName: string, weights: ByteSource, options: LoadAdapterOptions = {}): Promise<void> {
  let json: unknown;
  try {
    json = JSON.parse(configText);
  } catch (err) {
    throw new AdapterError(configName, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const config = parsePeftConfig(json, configName);
  loraModules(config, model.layers.length, configName, peftFieldNames); // the targets' errors name the file
  checkedSavedModules(model, config, configName, peftFieldNames);
  const st = await openTensorFile(weights);
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  try {
    for (const info of st.tensors) tensors.set(info.name, { shape: info.shape, data: await st.readAs(info.name, 'f32') });
  } finally {
    await st.close();
  }
  // The trained copies of modules_to_save come from the file, not from the base.
  const checked = checkAdapter(model, config, tensors, weights.name);
  await options.beforeAttach?.(checked);
  const resized = checked.vocabSize !== checked.baseVocabSize;
  const tokenizer = resized && options.adapterTokenizer ? await options.adapterTokenizer(checked) : null;
  attachCheckedAdapter(model, checked, tokenizer);
}
