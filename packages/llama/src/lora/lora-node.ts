// Node side of LoRA: PEFT adapter folders (adapter_config.json, adapter_model.safetensors or .bin, and the tokenizer
// of an adapter that brings its own vocabulary) and merged Hugging Face model folders (sharded safetensors, index,
// config, tokenizer).

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { add, cast, mul, noGrad, reshape, slice, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { toHfConfigJson } from '../formats/config.js';
import { AdapterError, ModelError } from '../errors.js';
import { adapterConfigName, adapterConfigText, adapterTorchWeightsName, adapterWeightsName, loadAdapterFromFiles, staleTokenizerFiles, type LoadAdapterOptions } from './adapter-files.js';
import { adaptedLinears, adapterTensorsToWrite, doraMergeScale, loraDelta } from './lora.js';
import type { Linear } from '../model/linear.js';
import type { LlamaModel } from '../model/model.js';
import { f32ToF16 } from '../formats/dtype-convert.js';
import { openFileSource } from '../formats/source-node.js';
import { writeSafetensors, writeShardedCheckpoint, type ShardedWriteResult } from '../formats/safetensors-node.js';
import { safetensorsIndexName, torchBinIndexName } from '../formats/safetensors-checkpoint.js';
import { modelTensorsToWrite, readLinearWeight } from '../model/weights.js';
import { writeFileAtomic } from '../formats/write-atomic-node.js';
import { finishInterruptedSave, saveFilesTogether, saveStagingName } from '../formats/folder-save-node.js';
import { lockFolderForSave } from '../formats/folder-save-lock-node.js';
import { isSaveLockFile } from '../formats/folder-save.js';
import { tokenizerFileNames } from '../tokenizers/tokenizer-files.js';

/**
 * Saves the model's adapter as PEFT does: `adapter_config.json` and `adapter_model.safetensors`
 * (f32, keys like `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`). An adapter that brings its own
 * vocabulary (loaded with its tokenizer, see LoadAdapterOptions' `adapterTokenizer`) also writes the tokenizer files it
 * was loaded with, byte for byte (tokenizer.json, tokenizer.model, tokenizer_config.json, special_tokens_map.json,
 * added_tokens.json, chat_template.jinja, those it came with), as transformers' Trainer saves the tokenizer beside the
 * adapter, so the folder loads back with the same tokenizer; an adapter on the base's vocabulary writes none. Saved over
 * an earlier adapter's folder, the tokenizer files of that adapter which this one does not write are removed (a
 * stale tokenizer.json would be read before this adapter's tokenizer.model); a folder holding tokenizer files but no
 * adapter is refused before anything is written (see staleTokenizerFiles). Nothing else in the folder is touched. The
 * files are saved together (see saveFilesTogether): a save that fails or is killed leaves the earlier adapter whole,
 * never its config beside the new weights; a second save into the folder while it runs is refused. Loadable with PEFT's
 * `PeftModel.from_pretrained`.
 *
 * @throws SaveInProgressError where another save into `dir` is running (see lockFolderForSave), naming its process.
 * @example
 * await saveAdapter(model, 'out/lora-huatuo');
 */
export async function saveAdapter(model: LlamaModel, dir: string, baseModel = ''): Promise<void> {
  if (model.loraConfig === null) throw new ModelError(`saveAdapter: the model has no adapter to save into ${dir}; call applyLora first`);
  // Locked from the folder's reading to the save's end: another save between them would change what this one replaces.
  const lock = await lockFolderForSave(dir);
  try {
    await finishInterruptedSave(dir, { lock });
    const names = await folderNames(dir);
    const stale = await staleTokenizerFiles(model, dir, names, async (name) => new Uint8Array(await readFile(join(dir, name))));
    const config = adapterConfigText(model, baseModel);
    await saveFilesTogether(
      dir,
      async (staging) => {
        for (const [name, bytes] of model.savedModules.tokenizerFiles ?? []) await writeFileAtomic(join(staging, name), bytes);
        await writeSafetensors(join(staging, adapterWeightsName), adapterTensorsToWrite(model), { metadata: { format: 'pt' } });
        await writeFileAtomic(join(staging, adapterConfigName), config);
      },
      { remove: stale, last: [adapterConfigName], lock },
    );
  } finally {
    await lock.release();
  }
}

/** The names in the folder `dir`; none where it does not exist. */
async function folderNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => name !== saveStagingName && !isSaveLockFile(name));
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Loads a PEFT LoRA adapter folder into the model (replacing any adapter), checking every
 * key and shape against the model and the adapter's config. The weights are
 * adapter_model.safetensors or, when that is absent, adapter_model.bin (older PEFT versions). All or nothing:
 * on any error the model is left as it was (see loadAdapterFromFiles). A save into the folder that was interrupted after
 * its files were all written is completed first (see finishInterruptedSave).
 *
 * @example
 * const model = await loadLlama('models/llama-7b', { dtype: 'f16' });
 * await loadAdapter(model, 'lora-llama-med');
 */
export async function loadAdapter(model: LlamaModel, dir: string, options: LoadAdapterOptions = {}): Promise<void> {
  await finishInterruptedSave(dir, { keepUncommitted: true });
  const configPath = join(dir, adapterConfigName);
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') throw new AdapterError(configPath, `file not found; pass a PEFT adapter folder holding adapter_config.json and ${adapterWeightsName} (or ${adapterTorchWeightsName})`);
    throw err;
  }
  const missing = (err: unknown) => (err as { code?: unknown }).code === 'ENOENT';
  const weightsPath = join(dir, adapterWeightsName);
  const source = await openFileSource(weightsPath).catch((err: unknown) => {
    if (!missing(err)) throw err;
    return openFileSource(join(dir, adapterTorchWeightsName)).catch((binErr: unknown) => {
      if (missing(binErr)) throw new AdapterError(weightsPath, `file not found, nor ${adapterTorchWeightsName}; pass a PEFT adapter folder holding its weights`);
      throw binErr;
    });
  });
  try {
    await loadAdapterFromFiles(model, text, configPath, source, options);
  } finally {
    await source.close?.();
  }
}

/** Options of {@link saveMergedModel}. */
export interface SaveMergedOptions {
  /** Largest shard in bytes (Hugging Face's default 5 GB; the 7B model is usually saved in 2 GB shards). */
  readonly maxShardBytes?: number;
  /**
   * Folder whose tokenizer files (tokenizer.json, tokenizer.model, tokenizer_config.json, special_tokens_map.json,
   * added_tokens.json, chat_template.jinja) and generation_config.json are copied along. Where the attached adapter brings
   * its own vocabulary, its tokenizer files are written instead of this folder's (only generation_config.json is copied).
   */
  readonly tokenizerDir?: string;
}

const GENERATION_CONFIG = 'generation_config.json';
const CONFIG = 'config.json';
const WEIGHTS_FILE = /^(model\.safetensors|model\.safetensors\.index\.json|model-\d+-of-\d+\.safetensors|pytorch_model\.bin|pytorch_model\.bin\.index\.json|pytorch_model-\d+-of-\d+\.bin)$/;

/**
 * The files of a model in the folder `dir` (holding the files `names`) that a merged model saved there replaces or would
 * be loaded with: config.json, generation_config.json, the tokenizer files (tokenizerFileNames), the weights
 * (model.safetensors, model-0000i-of-0000n.safetensors, pytorch_model*.bin and their indexes) and the shards the
 * indexes name. Sorted.
 */
async function earlierModelFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const found = new Set(names.filter((n) => n === CONFIG || n === GENERATION_CONFIG || tokenizerFileNames.includes(n) || WEIGHTS_FILE.test(n)));
  for (const index of [safetensorsIndexName, torchBinIndexName]) {
    if (!names.includes(index)) continue;
    let weightMap: unknown;
    const text = await readFile(join(dir, index), 'utf8');
    try {
      weightMap = (JSON.parse(text) as { weight_map?: unknown } | null)?.weight_map;
    } catch {
      continue; // not JSON: the index itself is removed, its shards are not known
    }
    if (typeof weightMap !== 'object' || weightMap === null) continue;
    for (const shard of Object.values(weightMap)) {
      if (typeof shard === 'string' && /\.(safetensors|bin)$/.test(shard) && names.includes(shard)) found.add(shard);
    }
  }
  return [...found].sort();
}

/**
 * Refuses the folder `dir` (holding the files `names`, of which `earlier` are a model's: earlierModelFiles) where it
 * holds no config.json and some of `earlier` are not what the save writes there byte for byte (`written`).
 */
async function refuseForeignModelFiles(dir: string, names: readonly string[], earlier: readonly string[], written: (name: string, bytes: Buffer) => Promise<boolean>): Promise<void> {
  if (names.includes(CONFIG)) return;
  const conflicting: string[] = [];
  for (const name of earlier) if (!(await written(name, await readFile(join(dir, name))))) conflicting.push(name);
  if (conflicting.length === 0) return;
  const listed = conflicting.join(', ');
  throw new ModelError(
    `${dir} holds ${listed} but no ${CONFIG}, so it is not a model's folder; the merged model would replace them or be loaded with them. ` +
      `Nothing was written: save it into an empty folder, or move ${listed} out of ${dir}`,
  );
}

/**
 * Refuses, before a model is loaded to be merged, a folder that saveMergedModel would refuse whatever it merges: one
 * holding a model's files (tokenizer files, generation_config.json, weights) but no config.json, unless each is a file of
 * one of `sources` byte for byte (the folders whose tokenizer the save may copy: the base's and the adapter's). A folder
 * it accepts may still be refused by the save, which knows which tokenizer it writes.
 *
 * @throws ModelError naming the folder and its files, as saveMergedModel's.
 * @example
 * await checkMergedModelFolder('out/merged', ['models/llama-7b', 'lora-huatuo']); // before loadLlama('models/llama-7b')
 */
export async function checkMergedModelFolder(dir: string, sources: readonly string[]): Promise<void> {
  await finishInterruptedSave(dir, { keepUncommitted: true });
  const names = await folderNames(dir);
  await refuseForeignModelFiles(dir, names, await earlierModelFiles(dir, names), async (name, bytes) => {
    for (const source of sources) {
      const theirs = await readFile(join(source, name)).catch(() => null);
      if (theirs !== null && theirs.equals(bytes)) return true;
    }
    return false;
  });
}

/**
 * Saves a Hugging Face model folder with the adapter's update merged into the base weights
 * (W + scaling * B A, times m / ||W + scaling B A|| per row with DoRA, computed per tensor as it is written; the model itself is unchanged):
 * sharded safetensors with their index, config.json, and the tokenizer: that of an adapter bringing its own vocabulary
 * (the files it was loaded with, byte for byte, beside its vocab_size in config.json), else `tokenizerDir`'s when given.
 * From a quantized base (int8, nf4), each projection is dequantized, merged in f32 and written as f16,
 * with every other weight in f16 too: the merged model is an ordinary f16 checkpoint. Saved over an earlier model's
 * folder (holding config.json), the earlier model's files this save does not write (see earlierModelFiles: a tokenizer.json
 * that would be read before the new tokenizer.model, shards its index named, its generation_config.json) are removed once
 * the new files are written (its tokenizer files and generation_config.json only where this save writes a tokenizer,
 * from tokenizerDir or the adapter); a folder holding such files but no config.json is refused before anything is written, unless
 * they are tokenizer files this save writes byte for byte. Files of other names (README.md, LICENSE) stay. The files
 * are saved together (see saveFilesTogether): a save that fails or is killed (a full disk, Ctrl-C) leaves the earlier
 * model whole, and needs the space of the new model beside it until it completes; a second save into the folder while
 * it runs is refused.
 *
 * @throws ModelError naming the folder and its files, where it holds a model's files but no config.json.
 * @throws SaveInProgressError where another save into `dir` is running (see lockFolderForSave), naming its process.
 *
 * @example
 * await saveMergedModel(model, 'out/huatuo-merged', { maxShardBytes: 2e9, tokenizerDir: 'models/llama-7b' });
 */
export async function saveMergedModel(model: LlamaModel, dir: string, options: SaveMergedOptions = {}): Promise<ShardedWriteResult> {
  const merged = new Map<string, { linear: Linear }>();
  for (const { linear } of adaptedLinears(model)) if (!linear.merged) merged.set(`${linear.name}.weight`, { linear });
  const f16 = model.dtype === 'f16' || model.quantization !== 'none';
  const tensors = modelTensorsToWrite(model).map((t) => {
    const m = merged.get(t.name);
    if (m === undefined) return t;
    return {
      ...t,
      data: async () => {
        if (m.linear.quantized !== null) {
          // Dequantized on the host, the update added in f32, written as f16.
          const all = await readLinearWeight(m.linear);
          const delta = noGrad(() => tidy(() => loraDelta(m.linear, 'f32')));
          const d = (await toArray(delta)) as Float32Array;
          delta.dispose();
          for (let i = 0; i < all.length; i++) all[i] = all[i]! + d[i]!;
          const scale = doraMergeScale(m.linear);
          if (scale !== null) {
            const s = (await toArray(scale)) as Float32Array;
            scale.dispose();
            const inp = m.linear.inFeatures;
            for (let i = 0; i < all.length; i++) all[i] = all[i]! * s[Math.floor(i / inp)]!;
          }
          return f32ToF16(all);
        }
        const parts = noGrad(() =>
          tidy(() => {
            const delta = loraDelta(m.linear, model.dtype);
            const scale = doraMergeScale(m.linear);
            const rowScale = scale === null ? null : reshape(cast(scale, model.dtype), [scale.size, 1]); // [out, 1]
            let start = 0;
            return m.linear.parts.map((p) => {
              const rows = p.shape[0]!;
              const sum = add(p, slice(delta, 0, start, start + rows));
              const out = rowScale === null ? sum : mul(sum, slice(rowScale, 0, start, start + rows));
              start += rows;
              return out;
            });
          }),
        );
        const arrays = await Promise.all(parts.map((p: Tensor) => toArray(p)));
        for (const p of parts) p.dispose();
        const all = new Float32Array(arrays.reduce((s, a) => s + a.length, 0));
        let at = 0;
        for (const a of arrays) {
          all.set(a as Float32Array, at);
          at += a.length;
        }
        return f16 ? f32ToF16(all) : all;
      },
    };
  });
  // Locked from the folder's reading to the save's end: another save between them would change what this one replaces.
  const lock = await lockFolderForSave(dir);
  try {
    await finishInterruptedSave(dir, { lock });
    const names = await folderNames(dir);
    const earlier = await earlierModelFiles(dir, names);
    const adapterTokenizer = model.savedModules.tokenizerFiles ?? null;
    const copied = new Map<string, Uint8Array>(adapterTokenizer ?? []);
    if (options.tokenizerDir !== undefined) {
      for (const f of adapterTokenizer === null ? [...tokenizerFileNames, GENERATION_CONFIG] : [GENERATION_CONFIG]) {
        try {
          copied.set(f, await readFile(join(options.tokenizerDir, f)));
        } catch (err) {
          if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
        }
      }
    }
    await refuseForeignModelFiles(dir, names, earlier, async (name, bytes) => {
      const mine = copied.get(name);
      return mine !== undefined && Buffer.from(mine).equals(bytes);
    });
    // A save given no tokenizer (no tokenizerDir, no adapter vocabulary) keeps the folder's: it may be the model's own.
    const writesTokenizer = options.tokenizerDir !== undefined || adapterTokenizer !== null;
    const replaced = writesTokenizer ? earlier : earlier.filter((name) => name !== GENERATION_CONFIG && !tokenizerFileNames.includes(name));
    let result: ShardedWriteResult | undefined;
    await saveFilesTogether(
      dir,
      async (staging) => {
        result = await writeShardedCheckpoint(staging, tensors, options.maxShardBytes === undefined ? {} : { maxShardBytes: options.maxShardBytes });
        for (const [name, bytes] of copied) await writeFileAtomic(join(staging, name), bytes);
        const cfg = toHfConfigJson({ ...model.config, torchDtype: f16 ? 'float16' : 'float32' });
        await writeFileAtomic(join(staging, CONFIG), `${JSON.stringify(cfg, null, 2)}\n`);
      },
      { remove: replaced, last: [CONFIG], lock },
    );
    return result!;
  } finally {
    await lock.release();
  }
}
