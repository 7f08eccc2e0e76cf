// Node side of safetensors: open files and checkpoint folders (safetensors or PyTorch .bin), stream tensors to disk
// (temp file, then rename), and write Hugging Face sharded checkpoints.

import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsError } from '../errors.js';
import { SafetensorsFile } from './safetensors.js';
import { planSafetensors, tensorBytes, type SafetensorsWriteOptions, type TensorToWrite } from './safetensors-write.js';
import { Checkpoint, safetensorsIndexName, safetensorsSingleName, torchBinIndexName, torchBinSingleName } from './safetensors-checkpoint.js';
import { openFileSource } from './source-node.js';
import { writeFileAtomic } from './write-atomic-node.js';

/**
 * Opens one safetensors file for streaming reads. Close it when done.
 *
 * @example
 * const st = await openSafetensors('adapter_model.safetensors');
 * try { const a = await st.readAs('base_model.model.lm_head.lora_A.weight', 'f32'); } finally { await st.close(); }
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const source = await openFileSource(path);
  try {
    return await SafetensorsFile.open(source);
  } catch (err) {
    await source.close();
    throw err;
  }
}

function isMissing(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ENOENT';
}

/**
 * Opens a Hugging Face checkpoint folder: `model.safetensors.index.json` with its shards,
 * or a single `model.safetensors`; failing both, PyTorch's `pytorch_model.bin.index.json` with its
 * `.bin` shards, or a single `pytorch_model.bin` (read without running its pickle, see TorchBinFile).
 * Every shard header is validated, and the index must agree with the shards. Close the checkpoint when done.
 *
 * @example
 * const ckpt = await openCheckpoint('models/llama-7b');
 * try { for await (const { info, data } of ckpt.iterateAs('f16')) use(info.name, data); } finally { await ckpt.close(); }
 */
export async function openCheckpoint(folder: string): Promise<Checkpoint> {
  for (const [indexName, singleName] of [
    [safetensorsIndexName, safetensorsSingleName],
    [torchBinIndexName, torchBinSingleName],
  ] as const) {
    const ckpt = await openLayout(folder, indexName, singleName);
    if (ckpt !== undefined) return ckpt;
  }
  let present: string[] = [];
  try {
    present = (await readdir(folder)).filter((f) => f.endsWith('.safetensors') || f.endsWith('.bin'));
  } catch (dirErr) {
    if (!isMissing(dirErr)) throw dirErr;
    throw new SafetensorsError(folder, undefined, 'the folder does not exist; pass the folder holding the checkpoint');
  }
  throw new SafetensorsError(
    folder,
    undefined,
    `none of ${safetensorsIndexName}, ${safetensorsSingleName}, ${torchBinIndexName} or ${torchBinSingleName} is here${present.length > 0 ? ` (found ${present.join(', ')})` : ''}; pass a Hugging Face checkpoint folder`,
  );
}

/** Opens `indexName` with its shards, or `singleName`, from `folder`; undefined when neither exists. */
async function openLayout(folder: string, indexName: string, singleName: string): Promise<Checkpoint | undefined> {
  const indexPath = join(folder, indexName);
  let indexText: string | undefined;
  try {
    indexText = await readFile(indexPath, 'utf8');
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  const shardSource = async (shard: string) => {
    try {
      return await openFileSource(join(folder, shard));
    } catch (err) {
      if (!isMissing(err)) throw err;
      throw new SafetensorsError(indexPath, undefined, `shard ${shard} is listed in "weight_map" but is missing from ${folder}; download it again`);
    }
  };
  if (indexText !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(indexText);
    } catch (err) {
      throw new SafetensorsError(indexPath, undefined, `not valid JSON (${err instanceof Error ? err.message : String(err)}); download it again`);
    }
    return Checkpoint.open(folder, { json, file: indexPath }, shardSource);
  }
  let source: Awaited<ReturnType<typeof openFileSource>>;
  try {
    source = await openFileSource(join(folder, singleName));
  } catch (err) {
    if (!isMissing(err)) throw err;
    return undefined;
  }
  return Checkpoint.open(folder, undefined, async () => source, singleName);
}

/**
 * Streams tensors to a safetensors file: the header first, then each tensor's data in
 * turn (a tensor given as a function is produced only when written, so at most one is
 * in memory). Written through {@link writeFileAtomic} (temp file, fsync, rename), so
 * bad input or a failure leaves any existing file untouched.
 *
 * @example
 * await writeSafetensors('adapter_model.safetensors', [
 *   { name: 'w', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
 * ], { metadata: { format: 'pt' } });
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: SafetensorsWriteOptions = {},
): Promise<void> {
  const plan = planSafetensors(path, tensors, options);
  await writeFileAtomic(path, async (handle) => {
    let position = 0;
    const writeAll = async (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
        done += bytesWritten;
      }
      position += bytes.byteLength;
    };
    await writeAll(plan.header);
    for (const { tensor, byteLength } of plan.tensors) {
      await writeAll(await tensorBytes(path, tensor, byteLength));
    }
  });
}

/** Options of `writeShardedCheckpoint`. */
export interface ShardedWriteOptions extends SafetensorsWriteOptions {
  /**
   * Largest sum of tensor bytes per shard. Tensors fill shards in the order given; a
   * tensor larger than this gets a shard of its own. Default 5 GB (Hugging Face's default).
   */
  readonly maxShardBytes?: number;
}

/** What `writeShardedCheckpoint` wrote. */
export interface ShardedWriteResult {
  /** Shard file names, in order. */
  readonly shards: readonly string[];
  /** The index file name, or undefined when everything fit in one `model.safetensors`. */
  readonly index: string | undefined;
  /** Sum of tensor data bytes (the index's `metadata.total_size`). */
  readonly totalSize: number;
}

const shardPattern = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** `model-00001-of-00003.safetensors`, as Hugging Face names shards. */
export function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Writes a Hugging Face checkpoint into `folder`: one `model.safetensors` when the tensors
 * fit in one shard, else `model-0000i-of-0000n.safetensors` shards plus
 * `model.safetensors.index.json` (`{metadata: {total_size}, weight_map}`, keys sorted,
 * as `save_pretrained` writes it). Every file is written to a temp file and renamed; the
 * index is written last, and shard files of an earlier save that the new one does not
 * use are removed only after everything new is in place. Each shard's header carries
 * `options.metadata` (default `{format: 'pt'}`).
 *
 * @example
 * await writeShardedCheckpoint('out/model', tensors, { maxShardBytes: 2 ** 30 });
 */
export async function writeShardedCheckpoint(
  folder: string,
  tensors: readonly TensorToWrite[],
  options: ShardedWriteOptions = {},
): Promise<ShardedWriteResult> {
  const maxShardBytes = options.maxShardBytes ?? 5_000_000_000;
  if (!(Number.isSafeInteger(maxShardBytes) && maxShardBytes > 0)) {
    throw new SafetensorsError(folder, undefined, `maxShardBytes should be a positive integer, got ${maxShardBytes}`);
  }
  const writeOptions: SafetensorsWriteOptions = { ...options, metadata: options.metadata ?? { format: 'pt' } };
  // Validate all tensors (names, dtypes, shapes, byte counts) before touching the disk.
  const whole = planSafetensors(folder, tensors, { order: 'given' });
  const groups: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let currentBytes = 0;
  for (const { tensor, byteLength } of whole.tensors) {
    if (current.length > 0 && currentBytes + byteLength > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(tensor);
    currentBytes += byteLength;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  const totalSize = whole.tensors.reduce((s, t) => s + t.byteLength, 0);
  const names = groups.length === 1 ? [safetensorsSingleName] : groups.map((_, i) => shardFileName(i, groups.length));
  groups.forEach((g, i) => planSafetensors(join(folder, names[i]!), g, writeOptions));

  await mkdir(folder, { recursive: true });
  for (let i = 0; i < groups.length; i++) {
    await writeSafetensors(join(folder, names[i]!), groups[i]!, writeOptions);
  }
  let indexName: string | undefined;
  if (groups.length > 1) {
    const weightMap: Record<string, string> = {};
    const entries: [string, string][] = [];
    groups.forEach((g, i) => g.forEach((t) => entries.push([t.name, names[i]!])));
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [k, v] of entries) Object.defineProperty(weightMap, k, { value: v, enumerable: true, writable: true, configurable: true });
    const text = `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`;
    await writeFileAtomic(join(folder, safetensorsIndexName), text);
    indexName = safetensorsIndexName;
  }
  // Remove what an earlier save left that would now be wrong or misleading.
  const keep = new Set(names);
  for (const f of await readdir(folder)) {
    const stale =
      (shardPattern.test(f) && !keep.has(f)) ||
      (f === safetensorsIndexName && indexName === undefined) ||
      (f === safetensorsSingleName && !keep.has(f));
    if (stale) await rm(join(folder, f), { force: true });
  }
  return { shards: names, index: indexName, totalSize };
}
