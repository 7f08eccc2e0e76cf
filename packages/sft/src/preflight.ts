// Checks made before a run allocates anything, so that what cannot run is refused up front (by
// --dry-run too) naming the flag to change: the model's context, the largest tensor a
// micro-batch makes against the adapter's binding limit, and the whole plan against memory.
import { derivedMaxModelLen, formatBytes, formatMemoryPlan, planMemory, type LlamaModel, type MemoryPlan } from '@huatuo/llama';
import { deviceInfo } from '@huatuo/tensor';
import type { TokenizedExample } from './batch.js';
import { ConfigError } from './errors.js';

/**
 * Refuses a `--cutoff-len` beyond the model's context, `model.maxModelLen`: config.json's max_position_embeddings
 * stretched by rope_scaling as vLLM derives its max_model_len, or `--max-model-len`. Positions past it were
 * neither trained nor covered by the scaling, so such a run would quietly learn from rotary angles the model
 * never saw.
 */
export function checkContext(cutoffLen: number, model: LlamaModel, name: string): void {
  const context = model.maxModelLen;
  const derived = derivedMaxModelLen(model.config);
  if (cutoffLen > context) {
    throw new ConfigError(
      '--cutoff-len',
      `${cutoffLen} tokens is beyond the context of ${name}, ${context} tokens (${model.maxModelLenSource}); lower it to ${context} or less, or ` +
        (context < derived
          ? `raise --max-model-len (config.json allows ${derived})`
          : 'give a longer --max-model-len with --allow-long-max-model-len to use positions the model was never trained for'),
    );
  }
}

/** Where the micro-batches come from, for the messages of {@link checkMicroBatchFits}. */
export interface MicroBatchSource {
  /** The data file. */
  file: string;
  /** The flag setting the micro-batch, e.g. `--micro-batch`. */
  flag: string;
  /** Whether micro-batches are drawn in random order (training) rather than in file order. */
  shuffled: boolean;
}

/** The largest single activation of a micro-batch of `rows` sequences padded to `length` tokens. */
function largestActivation(model: LlamaModel, rows: number, length: number): { name: string; bytes: number } {
  return planMemory(model.config, { batchSize: rows, seqLen: length, dtype: model.dtype, training: true }).largestActivation;
}

/** The longest padded micro-batch of `size` examples: any `size` examples together when shuffled, else consecutive ones. */
function worstMicroBatch(lengths: readonly number[], size: number, shuffled: boolean): { rows: number; length: number } {
  if (shuffled) return { rows: Math.min(size, lengths.length), length: Math.max(...lengths) };
  let worst = { rows: 1, length: 0 };
  for (let i = 0; i < lengths.length; i += size) {
    const group = lengths.slice(i, i + size);
    const length = Math.max(...group);
    if (group.length * length > worst.rows * worst.length) worst = { rows: group.length, length };
  }
  return worst;
}

/**
 * Refuses micro-batches with an activation one storage binding cannot hold. The loss runs lm_head
 * in chunks of rows and the MLP in chunks of tokens, so the largest tensor is the hidden states over the
 * micro-batch's padded tokens ([B, T, C]), sized by the memory planner.
 */
export function checkMicroBatchFits(model: LlamaModel, examples: readonly TokenizedExample[], microBatchSize: number, source: MicroBatchSource): void {
  const info = deviceInfo();
  if (info === null || examples.length === 0) return;
  const limit = Math.min(info.maxStorageBufferBindingSize, info.maxBufferSize);
  // Micro-batches are padded to their longest example, rounded up to a multiple of 8 (batch.ts).
  const lengths = examples.map((e) => Math.ceil(e.inputIds.length / 8) * 8);
  const worst = worstMicroBatch(lengths, microBatchSize, source.shuffled);
  const largest = largestActivation(model, worst.rows, worst.length);
  if (largest.bytes <= limit) return;
  const tensor = `its ${largest.name} needs ${formatBytes(largest.bytes)}, over the adapter's binding limit of ${formatBytes(limit)}`;
  const longest = Math.max(...lengths);
  const one = largestActivation(model, 1, longest);
  if (one.bytes > limit) {
    throw new ConfigError('--cutoff-len', `one example of ${source.file} alone (${longest} tokens) cannot fit: its ${one.name} needs ${formatBytes(one.bytes)}, over the adapter's binding limit of ${formatBytes(limit)}; lower --cutoff-len`);
  }
  let size = 1;
  while (size < microBatchSize) {
    const next = worstMicroBatch(lengths, size + 1, source.shuffled);
    if (largestActivation(model, next.rows, next.length).bytes > limit) break;
    size++;
  }
  throw new ConfigError(source.flag, `a micro-batch of ${worst.rows} sequences of ${worst.length} tokens from ${source.file} cannot fit: ${tensor}; lower ${source.flag} from ${microBatchSize} to ${size} or less, or lower --cutoff-len`);
}

/**
 * Refuses a plan larger than the memory the adapter has, where that is known (a CPU adapter
 * allocates from the host's memory; WebGPU reports no GPU's memory).
 */
export function checkPlanFits(plan: MemoryPlan): void {
  const memory = deviceInfo()?.memoryBytes ?? null;
  if (memory === null || plan.total <= memory) return;
  throw new ConfigError(
    '--micro-batch',
    `the run needs about ${formatBytes(plan.total)}, more than the ${formatBytes(memory)} this CPU adapter can use (the host's memory); ` +
      `lower --micro-batch or --cutoff-len, or use a smaller model (estimate: ${formatMemoryPlan(plan)})`,
  );
}
