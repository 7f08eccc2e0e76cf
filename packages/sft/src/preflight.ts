// Checks made before a run allocates anything, so that what cannot run is refused up front (by
// --dry-run too) naming the flag to change: the model's context, the largest tensor a
// micro-batch makes against the adapter's binding limit, and the whole plan against memory.
import { formatBytes, formatMemoryPlan, type LlamaConfig, type LlamaModel, type MemoryPlan } from '@huatuo/llama';
import { deviceInfo } from '@huatuo/tensor';
import type { TokenizedExample } from './batch.js';
import { ConfigError } from './errors.js';

/**
 * Refuses a `--cutoff-len` beyond the model's context (`max_position_embeddings`): positions past
 * it were never trained, so such a run would quietly learn from rotary angles the model never saw.
 */
export function checkContext(cutoffLen: number, config: LlamaConfig, model: string): void {
  if (cutoffLen > config.maxPositionEmbeddings) {
    throw new ConfigError(
      '--cutoff-len',
      `${cutoffLen} tokens is beyond the context of ${model}, ${config.maxPositionEmbeddings} tokens (max_position_embeddings); lower it to ${config.maxPositionEmbeddings} or less`,
    );
  }
}

/** Tokens of an example the loss is computed on (its labels other than -100, past the first position). */
function answerTokens(e: TokenizedExample): number {
  let n = 0;
  for (let i = 1; i < e.labels.length; i++) if (e.labels[i] !== -100) n++;
  return n;
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

/**
 * Refuses micro-batches whose logits cannot be allocated: the loss computes logits [N, V] in the
 * model's dtype for the N answer tokens of a micro-batch, one buffer that the adapter's binding
 * limit bounds. With shuffled batches the worst case is the `microBatchSize` examples with the
 * most answer tokens together.
 */
export function checkMicroBatchFits(model: LlamaModel, examples: readonly TokenizedExample[], microBatchSize: number, source: MicroBatchSource): void {
  const info = deviceInfo();
  if (info === null || examples.length === 0) return;
  const limit = Math.min(info.maxStorageBufferBindingSize, info.maxBufferSize);
  const V = model.config.vocabSize;
  const tokenBytes = V * (model.dtype === 'f16' ? 2 : 4);
  const fit = Math.floor(limit / tokenBytes);
  const counts = examples.map(answerTokens);
  let worst = 0;
  if (source.shuffled) {
    worst = [...counts].sort((a, b) => b - a).slice(0, microBatchSize).reduce((s, n) => s + n, 0);
  } else {
    for (let i = 0; i < counts.length; i += microBatchSize) worst = Math.max(worst, counts.slice(i, i + microBatchSize).reduce((s, n) => s + n, 0));
  }
  if (worst <= fit) return;
  const tensor = `the logits [${worst}, ${V}] ${model.dtype} of ${worst} answer tokens in one micro-batch need ${formatBytes(worst * tokenBytes)}, over the adapter's binding limit of ${formatBytes(limit)} (${fit} answer tokens)`;
  const longest = Math.max(...counts);
  if (longest > fit) {
    throw new ConfigError('--cutoff-len', `${tensor}; one example of ${source.file} alone has ${longest} answer tokens: lower --cutoff-len so that at most ${fit} remain`);
  }
  let size = 1;
  const sorted = [...counts].sort((a, b) => b - a);
  while (size < microBatchSize && sorted.slice(0, size + 1).reduce((s, n) => s + n, 0) <= fit) size++;
  throw new ConfigError(source.flag, `${tensor}; lower ${source.flag} from ${microBatchSize} to ${size} or less, or lower --cutoff-len`);
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
