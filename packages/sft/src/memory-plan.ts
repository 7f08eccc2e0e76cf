// The memory plan of a training run: HuaTuo's recipe on a model config, the largest micro-batch
// that fits the adapter (binding limits, and --gpu-memory when given), and a refusal that names
// the flag to change when nothing fits. Needs only the config, so it runs before any weight loads.
import {
  formatBytes, formatMemoryPlan, planMemory, resolveLoraConfig, savedModules, type LlamaConfig, type LoraTargetModule, type MemoryLimits, type MemoryPlan, type SavedModules,
} from '@huatuo/llama';
import type { FloatDType } from '@huatuo/tensor';
import type { TrainConfig } from './config.js';
import { ConfigError } from './errors.js';

/** The plan of one micro-batch of `config`'s recipe on a model with this config and dtype. */
export function trainingPlan(model: LlamaConfig, config: TrainConfig, dtype: FloatDType, microBatch: number): MemoryPlan {
  return planMemory(model, {
    batchSize: microBatch,
    seqLen: config.cutoffLen,
    dtype,
    quantize: config.quantize,
    gradientCheckpointing: config.gradientCheckpointing,
    lora: { r: config.loraR, targetModules: config.loraTargetModules as LoraTargetModule[], useDora: config.loraUseDora, modulesToSave: modulesToSaveOf(config) },
    training: true,
  });
}

/** The modules `--lora-modules-to-save` trains in full. */
function modulesToSaveOf(config: TrainConfig): SavedModules {
  return savedModules(resolveLoraConfig({ modulesToSave: config.loraModulesToSave }), 1);
}

/** Why a plan does not fit `limits`, or null when it fits. */
function overflow(plan: MemoryPlan, limits: MemoryLimits): 'binding' | 'total' | null {
  if (plan.largestActivation.bytes > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)) return 'binding';
  if (limits.totalMemory !== undefined && plan.total > limits.totalMemory) return 'total';
  return null;
}

/** The flags that shrink a run, most effective first, given what the run already uses. */
function remedies(config: TrainConfig, why: 'binding' | 'total'): string {
  if (why === 'binding') return 'lower --cutoff-len';
  const out: string[] = [];
  if (config.quantize !== 'nf4') out.push(`--quantize ${config.quantize === 'none' ? 'int8 or nf4' : 'nf4'}`);
  if (!config.gradientCheckpointing) out.push('--gradient-checkpointing');
  out.push('a lower --cutoff-len', 'a larger --gpu-memory if the GPU has more');
  return out.join(', ');
}

/**
 * The micro-batch to train with: `config.microBatchSize` when set, checked; with 'auto' the
 * largest power of two up to 16 dividing the batch whose plan fits `limits` (the rest of the
 * batch is accumulated). Throws ConfigError naming the flag to change when none fits.
 * Without limits (no device), 1 for 'auto'.
 */
export function fitMicroBatch(model: LlamaConfig, config: TrainConfig, dtype: FloatDType, limits: MemoryLimits | null): number {
  const describe = (plan: MemoryPlan, why: 'binding' | 'total') =>
    why === 'binding'
      ? `its ${plan.largestActivation.name} needs ${formatBytes(plan.largestActivation.bytes)}, over the adapter's binding limit of ${formatBytes(Math.min(limits!.maxStorageBufferBindingSize, limits!.maxBufferSize))}`
      : `it needs about ${formatBytes(plan.total)} of GPU memory, over --gpu-memory ${formatBytes(limits!.totalMemory!)} (${formatMemoryPlan(plan)})`;
  if (config.microBatchSize !== 'auto') {
    if (limits === null) return config.microBatchSize;
    const plan = trainingPlan(model, config, dtype, config.microBatchSize);
    const why = overflow(plan, limits);
    if (why === null) return config.microBatchSize;
    const one = config.microBatchSize > 1 && overflow(trainingPlan(model, config, dtype, 1), limits) === null;
    const flag = one ? '--micro-batch' : why === 'binding' ? '--cutoff-len' : '--gpu-memory';
    throw new ConfigError(flag, `a micro-batch of ${config.microBatchSize} sequences of ${config.cutoffLen} tokens cannot fit: ${describe(plan, why)}; ${one ? 'use --micro-batch auto or a smaller one' : remedies(config, why)}`);
  }
  if (limits === null) return 1;
  let best = 0;
  for (let mb = 1; mb <= config.batchSize && mb <= 16; mb *= 2) {
    if (config.batchSize % mb !== 0) break;
    if (overflow(trainingPlan(model, config, dtype, mb), limits) !== null) break;
    best = mb;
  }
  if (best === 0) {
    const plan = trainingPlan(model, config, dtype, 1);
    const why = overflow(plan, limits)!;
    throw new ConfigError(why === 'binding' ? '--cutoff-len' : '--gpu-memory', `one sequence of ${config.cutoffLen} tokens cannot fit: ${describe(plan, why)}; ${remedies(config, why)}`);
  }
  return best;
}
