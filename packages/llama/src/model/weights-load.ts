// Loading LLaMA weights from an open safetensors checkpoint (files on disk or browser Files):
// every expected key and shape checked against the config, then tensors streamed one at a time.

import type { FloatDType, HostQuantized, QuantizedWeight, QuantizePool, Tensor } from '@huatuo/tensor';
import { QuantizedWeight as Quantized, defaultQuantizeThreads, hasF16, openQuantizePool, quantizedFromFinite } from '@huatuo/tensor';
import type { LlamaConfig } from '../formats/config.js';
import { ModelError, SafetensorsError } from '../errors.js';
import type { LlamaModel } from './model.js';
import type { Checkpoint, LoadProgress } from '../formats/safetensors-checkpoint.js';
import { loraTargetModules, modulePath } from '../lora/lora-config.js';
import { assembleModel, bindingLimit, expectedWeights, hostRows, uploadWeight, weightParts, type ModelOptions, type Quantization } from './weights.js';

/** Options of {@link loadLlama} and {@link loadLlamaFromCheckpoint}. */
export interface LoadLlamaOptions extends ModelOptions {
  /** Called after each tensor is read and uploaded. */
  readonly onProgress?: (progress: LoadProgress) => void;
  /**
   * Quantize the decoder layers' projections while loading (each tensor read on the host, F16 as its bit
   * patterns and F32 or BF16 as f32, quantized from its exact values, and uploaded quantized; no unquantized
   * copy reaches the GPU): 'int8' or 'nf4'. Default 'none'.
   */
  readonly quantize?: Quantization;
  /**
   * Threads quantizing projections at once (Node: worker threads, each projection quantized by the same
   * function as on the main thread, so the bytes are the same for any count): 1 quantizes on the main thread.
   * Default: the cores this process may use less one, at most 8 (defaultQuantizeThreads). At most this many
   * projections are being quantized at a time, and one more waits. Browsers quantize on the calling thread
   * whatever the count.
   */
  readonly quantizeThreads?: number;
}

// Buffers some conversions save that the model recomputes.
const ignoredKey = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/**
 * Refuses a config whose layer count the weights do not have, before the nine names per layer
 * it implies are listed (a config claiming a million layers would take minutes to list).
 */
function checkLayerCount(ckpt: Checkpoint, config: LlamaConfig, where: string): void {
  const layers = new Set<number>();
  for (const t of ckpt.tensors) {
    const m = /^model\.layers\.(\d+)\./.exec(t.name);
    if (m) layers.add(Number(m[1]));
  }
  if (layers.size !== config.numHiddenLayers) {
    const held = layers.size === 0 ? 'no decoder layer' : `${layers.size} decoder layer${layers.size === 1 ? '' : 's'} (model.layers.${Math.min(...layers)} to model.layers.${Math.max(...layers)})`;
    throw new SafetensorsError(
      where,
      undefined,
      `config.json gives num_hidden_layers ${config.numHiddenLayers}, but the weights hold ${held}; the config and the weights belong to different models`,
    );
  }
}

/**
 * Reads the projections `names` (file order, the next read started early) and quantizes them on `pool`, at most
 * pool.threads + 1 waiting or in progress (1 on the main thread); `done` gets each result in file order. A
 * failure names the tensor and its file. The NaN and infinity check runs on the quantized weight
 * (quantizedFromFinite) instead of on the read, so that no pass over the values is left on the main thread; a
 * tensor that fails it is read again to be refused with the read's own error.
 */
async function quantizeProjections(
  ckpt: Checkpoint,
  names: string[],
  format: Exclude<Quantization, 'none'>,
  pool: QuantizePool,
  onProgress: (p: LoadProgress) => void,
  done: (name: string, host: HostQuantized) => void,
): Promise<void> {
  const pending: { name: string; job: Promise<HostQuantized> }[] = [];
  const settle = async () => {
    const { name, job } = pending.shift()!;
    const host = await job;
    if (!quantizedFromFinite(host)) await ckpt.readAs(name, ckpt.info(name).dtype === 'F16' ? 'f16' : 'f32');
    done(name, host);
  };
  for await (const { info, data } of ckpt.iterateExact({ names, onProgress, prefetch: true, allowNonFinite: true })) {
    const [rows, cols] = info.shape as [number, number];
    const job = pool.quantize(data, rows, cols, format).catch((err: unknown) => {
      throw new SafetensorsError(info.shard, info.name, `could not be quantized to ${format}: ${err instanceof Error ? err.message : String(err)}`);
    });
    // Rejected while an earlier job is awaited, or never awaited when the load fails: not an unhandled rejection.
    job.catch(() => undefined);
    pending.push({ name: info.name, job });
    // One more than the workers, so that a worker finishing finds the next projection waiting.
    if (pending.length >= (pool.threads === 1 ? 1 : pool.threads + 1)) await settle();
  }
  while (pending.length > 0) await settle();
}

/**
 * Loads a LLaMA from an open checkpoint whose config is already parsed; `where` names the
 * folder in errors. The checkpoint stays open (the caller closes it). Browser-safe.
 *
 * @example
 * const ckpt = await openCheckpointFromFiles([...input.files]);
 * const model = await loadLlamaFromCheckpoint(ckpt, parseLlamaConfig(json, 'config.json'), 'picked folder');
 */
export async function loadLlamaFromCheckpoint(ckpt: Checkpoint, config: LlamaConfig, where: string, options: LoadLlamaOptions = {}): Promise<LlamaModel> {
  const dtype: FloatDType = options.dtype ?? 'f32';
  if (dtype === 'f16' && !hasF16()) {
    throw new ModelError(`loadLlama: dtype f16 needs the adapter feature shader-f16, which this adapter lacks; load ${where} with dtype 'f32'`);
  }
  const limit = bindingLimit(options.maxBindingBytes);
  checkLayerCount(ckpt, config, where);
  const specs = expectedWeights(config);
  const expected = new Set(specs.map((s) => s.name));
  for (const spec of specs) {
    if (!ckpt.has(spec.name)) {
      throw new SafetensorsError(where, spec.name, `missing; config.json (${config.numHiddenLayers} layers, tie_word_embeddings ${config.tieWordEmbeddings}) expects it with shape [${spec.shape.join(', ')}]`);
    }
    const info = ckpt.info(spec.name);
    if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i])) {
      throw new SafetensorsError(info.shard, spec.name, `has shape [${info.shape.join(', ')}], but config.json implies [${spec.shape.join(', ')}]; the config and the weights belong to different models`);
    }
    if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
      throw new SafetensorsError(info.shard, spec.name, `has dtype ${info.dtype}; expected F32, F16 or BF16 (quantized checkpoints are not supported)`);
    }
  }
  for (const t of ckpt.tensors) {
    const tiedHead = t.name === 'lm_head.weight' && config.tieWordEmbeddings;
    if (!expected.has(t.name) && !ignoredKey.test(t.name) && !tiedHead) {
      throw new SafetensorsError(t.shard, t.name, `is not a weight of LlamaForCausalLM with ${config.numHiddenLayers} layers; check config.json against the checkpoint`);
    }
  }
  const quantize = options.quantize ?? 'none';
  const threads = options.quantizeThreads ?? defaultQuantizeThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new ModelError(`loadLlama: quantizeThreads is ${threads}; give a whole number of at least 1 (1 quantizes on the main thread)`);
  }
  const projections = new Set(
    quantize === 'none' ? [] : Array.from({ length: config.numHiddenLayers }, (_, i) => loraTargetModules.map((t) => `${modulePath(i, t)}.weight`)).flat(),
  );
  const uploaded = new Map<string, Tensor[]>();
  const quantized = new Map<string, QuantizedWeight>();
  // Two passes (the model's dtype, then the projections' exact values to quantize), reported as one.
  const plain = specs.map((s) => s.name).filter((n) => !projections.has(n));
  const firstBytes = plain.reduce((s, n) => s + ckpt.info(n).byteLength, 0);
  const totalBytes = ckpt.tensors.filter((t) => expected.has(t.name)).reduce((s, t) => s + t.byteLength, 0);
  const progress = (offsetBytes: number, offsetTensors: number) => (p: LoadProgress) =>
    options.onProgress?.({ ...p, bytesRead: p.bytesRead + offsetBytes, totalBytes, tensorsRead: p.tensorsRead + offsetTensors, totalTensors: specs.length });
  // Opened before the first pass, so that its threads start while the unquantized tensors load.
  const pool = quantize === 'none' ? undefined : openQuantizePool(threads);
  try {
    for await (const { info, data } of ckpt.iterateAs(dtype, { names: plain, onProgress: progress(0, 0) })) {
      if (info.shape.length === 2) {
        const [rows, cols] = info.shape as [number, number];
        let start = 0;
        uploaded.set(
          info.name,
          weightParts(rows, cols, dtype, limit).map((r) => {
            const part = uploadWeight(hostRows(data, start, r, cols), [r, cols], dtype);
            start += r;
            return part;
          }),
        );
      } else {
        uploaded.set(info.name, [uploadWeight(data, info.shape, dtype)]);
      }
    }
    if (pool && quantize !== 'none') {
      await quantizeProjections(ckpt, [...projections], quantize, pool, progress(firstBytes, plain.length), (name, host) => quantized.set(name, Quantized.upload(host, name)));
    }
  } catch (err) {
    for (const parts of uploaded.values()) for (const p of parts) p.dispose('loading failed');
    for (const q of quantized.values()) q.dispose();
    throw err;
  } finally {
    await pool?.close();
  }
  return assembleModel(
    config,
    dtype,
    limit,
    (spec) => uploaded.get(spec.name)!,
    (spec) => uploaded.get(spec.name)![0]!,
    quantize === 'none' ? undefined : (spec) => quantized.get(spec.name)!,
  );
}
