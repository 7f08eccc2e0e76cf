// Checkpoints of one or more safetensors (or PyTorch .bin) shards, with or without Hugging Face's
// `model.safetensors.index.json` (`pytorch_model.bin.index.json`), read tensor by tensor with progress. Browser-safe.

import { SafetensorsError } from '../errors.js';
import { pickedFolderFiles, pickedSubfoldersHolding } from './folder-save.js';
import { convertFloatBytes, type HostFloatArray, type HostFloatDType } from './safetensors.js';
import { describe, type TensorInfo } from './safetensors-header.js';
import { blobSource, type ByteSource } from './source.js';
import { openTensorFile, type TensorFile } from './tensor-file.js';

/** File name of a sharded checkpoint's index. */
export const safetensorsIndexName = 'model.safetensors.index.json';
/** File name of a single-file checkpoint. */
export const safetensorsSingleName = 'model.safetensors';
/** File name of a sharded PyTorch `.bin` checkpoint's index (same layout as the safetensors one). */
export const torchBinIndexName = 'pytorch_model.bin.index.json';
/** File name of a single-file PyTorch `.bin` checkpoint. */
export const torchBinSingleName = 'pytorch_model.bin';

/** A tensor of a checkpoint and the shard holding it. */
export interface CheckpointTensorInfo extends TensorInfo {
  /** The shard's file name (as written in the index, or the single file's name). */
  readonly shard: string;
}

/** Load progress, reported after each tensor is read. */
export interface LoadProgress {
  /** Tensor data bytes read so far. */
  readonly bytesRead: number;
  /** Tensor data bytes of all tensors being read. */
  readonly totalBytes: number;
  readonly tensorsRead: number;
  readonly totalTensors: number;
  /** The tensor just read. */
  readonly name: string;
}

/** Options of checkpoint iteration. */
export interface IterateOptions {
  /** Called after each tensor is read. */
  readonly onProgress?: (progress: LoadProgress) => void;
  /** Only these tensors (each must exist); default all. */
  readonly names?: readonly string[];
  /**
   * Start reading the next tensor before yielding this one, so that the read overlaps the caller's work on
   * it (at most two tensors in memory). Default false: one tensor at a time.
   */
  readonly prefetch?: boolean;
  /**
   * iterateAs and iterateExact: skip the check for NaN and infinity (the caller checks the values itself, as
   * the quantized load does from the quantized weights). Default false: such a tensor is refused by name.
   */
  readonly allowNonFinite?: boolean;
}

/** A tensor read from a checkpoint. */
export interface LoadedTensor<D> {
  readonly info: CheckpointTensorInfo;
  readonly data: D;
}

/** A parsed `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** `metadata.total_size` when present. */
  readonly totalSize: number | undefined;
  /** Tensor name to shard file name. */
  readonly weightMap: ReadonlyMap<string, string>;
}

/**
 * Parses and checks a sharded checkpoint's index JSON: a `weight_map` object of tensor
 * names to plain shard file names (no directories). `file` names it in errors.
 */
export function parseSafetensorsIndex(json: unknown, file: string): SafetensorsIndex {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, undefined, 'the index should be a JSON object with a "weight_map"');
  }
  const { weight_map: weightMap, metadata } = json as Record<string, unknown>;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new SafetensorsError(file, undefined, '"weight_map" should be an object mapping tensor names to shard files');
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || /[/\\]/.test(shard) || shard === '.' || shard === '..') {
      throw new SafetensorsError(file, name, `"weight_map" should map it to a shard file name in the same folder, got ${describe(shard)}`);
    }
    map.set(name, shard);
  }
  let totalSize: number | undefined;
  if (metadata !== undefined && metadata !== null) {
    const ts = (metadata as Record<string, unknown>)['total_size'];
    if (ts !== undefined) {
      if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
        throw new SafetensorsError(file, undefined, `"metadata.total_size" should be a non-negative integer, got ${describe(ts)}`);
      }
      totalSize = ts;
    }
  }
  return { totalSize, weightMap: map };
}

/**
 * A checkpoint opened for streaming: every shard's header is validated on open, tensor
 * data is read one tensor at a time.
 *
 * @example
 * const ckpt = await openCheckpoint('models/llama-7b');
 * for await (const { info, data } of ckpt.iterateAs('f32', { onProgress: (p) => bar(p.bytesRead / p.totalBytes) })) {
 *   upload(info.name, data);
 * }
 * await ckpt.close();
 */
export class Checkpoint {
  /** The folder or index the checkpoint was opened from, used in messages. */
  readonly name: string;
  /** Every tensor, shard by shard, in file order within a shard. */
  readonly tensors: readonly CheckpointTensorInfo[];
  /** Sum of all tensors' data bytes. */
  readonly totalBytes: number;
  private readonly files: ReadonlyMap<string, TensorFile>;
  private readonly byName: ReadonlyMap<string, CheckpointTensorInfo>;

  private constructor(name: string, files: ReadonlyMap<string, TensorFile>, tensors: CheckpointTensorInfo[]) {
    this.name = name;
    this.files = files;
    this.tensors = Object.freeze(tensors);
    this.byName = new Map(tensors.map((t) => [t.name, t]));
    this.totalBytes = tensors.reduce((s, t) => s + t.byteLength, 0);
  }

  /**
   * Opens a checkpoint from byte sources. With an index (`indexFile` names it in errors),
   * every `weight_map` entry must be in its shard and every shard tensor in the map;
   * `shardSource(fileName)` gives each shard's bytes. Without an index, `shardSource` is
   * called once, for `singleName` (default `model.safetensors`). Each shard is read as safetensors
   * or, when its bytes are a zip archive, as a PyTorch `.bin` ({@link TorchBinFile}).
   */
  static async open(
    name: string,
    index: { readonly json: unknown; readonly file: string } | undefined,
    shardSource: (shard: string) => Promise<ByteSource>,
    singleName: string = safetensorsSingleName,
  ): Promise<Checkpoint> {
    const files = new Map<string, TensorFile>();
    try {
      if (index === undefined) {
        const st = await openClosingOnError(await shardSource(singleName));
        files.set(singleName, st);
        return new Checkpoint(name, files, st.tensors.map((t) => ({ ...t, shard: singleName })));
      }
      const parsed = parseSafetensorsIndex(index.json, index.file);
      const shards = [...new Set(parsed.weightMap.values())].sort();
      const tensors: CheckpointTensorInfo[] = [];
      for (const shard of shards) files.set(shard, await openClosingOnError(await shardSource(shard)));
      for (const shard of shards) {
        for (const t of files.get(shard)!.tensors) {
          const mapped = parsed.weightMap.get(t.name);
          if (mapped !== shard) {
            throw new SafetensorsError(
              index.file,
              t.name,
              mapped === undefined
                ? `shard ${shard} holds this tensor but "weight_map" does not list it; the index is stale: regenerate it`
                : `shard ${shard} holds this tensor but "weight_map" places it in ${mapped}; the index is stale: regenerate it`,
            );
          }
          tensors.push({ ...t, shard });
        }
      }
      for (const [tensor, shard] of parsed.weightMap) {
        if (!files.get(shard)!.has(tensor)) {
          throw new SafetensorsError(index.file, tensor, `"weight_map" places it in ${shard}, which does not hold it; the index or the shard is wrong`);
        }
      }
      return new Checkpoint(name, files, tensors);
    } catch (err) {
      await Promise.allSettled([...files.values()].map((f) => f.close()));
      throw err;
    }
  }

  /** True when the checkpoint holds `name`. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The tensor called `name`; throws SafetensorsError when absent. */
  info(name: string): CheckpointTensorInfo {
    const t = this.byName.get(name);
    if (t === undefined) throw new SafetensorsError(this.name, name, `no such tensor in the checkpoint's ${this.tensors.length} tensors`);
    return t;
  }

  /** Reads one tensor's raw bytes. */
  async read(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return this.files.get(t.shard)!.read(name);
  }

  /** Reads one F32, F16 or BF16 tensor as f32 values or f16 bit patterns. */
  async readAs<T extends HostFloatDType>(name: string, target: T, options: { allowNonFinite?: boolean } = {}): Promise<HostFloatArray<T>> {
    const t = this.info(name);
    return this.files.get(t.shard)!.readAs(name, target, options);
  }

  /** Iterates over tensors' raw bytes, one tensor in memory at a time, in file order. */
  async *iterate(options: IterateOptions = {}): AsyncGenerator<LoadedTensor<Uint8Array>> {
    yield* this.walk(options, async (t) => this.files.get(t.shard)!.read(t.name));
  }

  /** Iterates over F32, F16 and BF16 tensors converted to `target`, one at a time, in file order. */
  async *iterateAs<T extends HostFloatDType>(target: T, options: IterateOptions = {}): AsyncGenerator<LoadedTensor<HostFloatArray<T>>> {
    const chosen = this.select(options.names);
    for (const t of chosen) {
      if (convertFloatBytes(new Uint8Array(0), t.dtype, target) === undefined) {
        throw new SafetensorsError(t.shard, t.name, `dtype ${t.dtype} cannot be read as ${target}; only F32, F16 and BF16 convert; use iterate() for raw bytes`);
      }
    }
    const check = { allowNonFinite: options.allowNonFinite ?? false };
    yield* this.walk(options, async (t) => this.files.get(t.shard)!.readAs(t.name, target, check));
  }

  /**
   * Iterates over F32, F16 and BF16 tensors as host floats without rounding, one at a time, in file order:
   * F16 tensors as their f16 bit patterns (no f32 copy), F32 and BF16 tensors as f32 values.
   *
   * @example
   * for await (const { info, data } of ckpt.iterateExact({ names })) quantized.set(info.name, data instanceof Uint16Array ? fromF16(data) : fromF32(data));
   */
  async *iterateExact(options: IterateOptions = {}): AsyncGenerator<LoadedTensor<Float32Array | Uint16Array>> {
    for (const t of this.select(options.names)) {
      if (convertFloatBytes(new Uint8Array(0), t.dtype, 'f32') === undefined) {
        throw new SafetensorsError(t.shard, t.name, `dtype ${t.dtype} cannot be read as floats; only F32, F16 and BF16 convert; use iterate() for raw bytes`);
      }
    }
    const check = { allowNonFinite: options.allowNonFinite ?? false };
    yield* this.walk(options, async (t) => this.files.get(t.shard)!.readAs(t.name, t.dtype === 'F16' ? 'f16' : 'f32', check));
  }

  private select(names: readonly string[] | undefined): CheckpointTensorInfo[] {
    if (names === undefined) return [...this.tensors];
    const wanted = new Set(names.map((n) => this.info(n).name));
    return this.tensors.filter((t) => wanted.has(t.name));
  }

  private async *walk<D>(options: IterateOptions, load: (t: CheckpointTensorInfo) => Promise<D>): AsyncGenerator<LoadedTensor<D>> {
    const chosen = this.select(options.names);
    const totalBytes = chosen.reduce((s, t) => s + t.byteLength, 0);
    let bytesRead = 0;
    let tensorsRead = 0;
    let next: Promise<D> | undefined;
    for (const [i, info] of chosen.entries()) {
      const data = await (next ?? load(info));
      next = options.prefetch && i + 1 < chosen.length ? load(chosen[i + 1]!) : undefined;
      // A caller that stops early never awaits the prefetched read: its failure must not go unhandled.
      next?.catch(() => undefined);
      bytesRead += info.byteLength;
      tensorsRead += 1;
      options.onProgress?.({ bytesRead, totalBytes, tensorsRead, totalTensors: chosen.length, name: info.name });
      yield { info, data };
    }
  }

  /** Closes every shard's source. */
  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

/** Opens `source` as safetensors or PyTorch .bin, closing it when its header is malformed. */
async function openClosingOnError(source: ByteSource): Promise<TensorFile> {
  try {
    return await openTensorFile(source);
  } catch (err) {
    await source.close?.();
    throw err;
  }
}

/** A model checkpoint's file, as named in a subfolder the picked folder holds (not an adapter's, nor a trainer's training_args.bin). */
function isModelWeightsName(name: string): boolean {
  return name === safetensorsIndexName || name === torchBinIndexName || (name.endsWith('.safetensors') && !name.startsWith('adapter_model')) || /^pytorch_model.*\.bin$/.test(name);
}

/**
 * Opens a checkpoint from browser `File`s (e.g. a folder picked with `webkitdirectory`):
 * `model.safetensors.index.json` with its shards, or a single `.safetensors` file; failing both,
 * `pytorch_model.bin.index.json` with its shards, or a single `.bin` file.
 * Files are matched by their `name`; other files (config, tokenizer) are ignored. Of a picked folder, only its own files
 * are read, as Node's loaders read it (see pickedFolderFiles): not its subfolders', and never those of a save
 * interrupted there, whose commit (when it reached it) is read as completed. Where the folder holds no weights of its own
 * but subfolders do, the error names them.
 */
export async function openCheckpointFromFiles(picked: readonly File[]): Promise<Checkpoint> {
  const byName = (await pickedFolderFiles(picked)).files;
  const files = [...byName.values()];
  const anySafetensors = files.some((f) => f.name.endsWith('.safetensors'));
  const indexFile = byName.get(safetensorsIndexName) ?? (anySafetensors ? undefined : byName.get(torchBinIndexName));
  if (indexFile !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(await indexFile.text());
    } catch (err) {
      throw new SafetensorsError(indexFile.name, undefined, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    return Checkpoint.open(indexFile.name, { json, file: indexFile.name }, async (shard) => {
      const f = byName.get(shard);
      if (f === undefined) throw new SafetensorsError(indexFile.name, undefined, `shard ${shard} is listed in "weight_map" but was not among the files given; select it too`);
      return blobSource(f);
    });
  }
  const extension = anySafetensors ? '.safetensors' : '.bin';
  const torchSingle = anySafetensors ? undefined : byName.get(torchBinSingleName);
  const singles = torchSingle !== undefined ? [torchSingle] : files.filter((f) => f.name.endsWith(extension));
  if (singles.length === 0) {
    const { advice } = pickedSubfoldersHolding(picked, 'a checkpoint (.safetensors or .bin)', isModelWeightsName);
    if (advice !== '') throw new SafetensorsError(files.map((f) => f.name).join(', ') || '(no files)', undefined, `no ${safetensorsIndexName}, .safetensors or .bin file among the picked folder's own files (its subfolders' are not read); ${advice}`);
  }
  if (singles.length !== 1) {
    throw new SafetensorsError(
      files.map((f) => f.name).join(', ') || '(no files)',
      undefined,
      `expected ${safetensorsIndexName} (or ${torchBinIndexName}) with its shards, or exactly one .safetensors (or .bin) file; got ${singles.length} ${extension} files and no index`,
    );
  }
  const single = singles[0]!;
  return Checkpoint.open(single.name, undefined, async () => blobSource(single), single.name);
}
