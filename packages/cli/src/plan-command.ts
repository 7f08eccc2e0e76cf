// `huatuo-train plan`: the GPU memory of a training run (weights, LoRA, gradients, AdamW state,
// activations, loss logits, peak) from a preset or a config.json alone, with no weights or GPU.
import { Command } from 'commander';
import { configFromPreset, formatBytes, llamaPresets, loadLlamaConfig, type LlamaConfig, type LlamaPresetName, type MemoryPlan } from '@huatuo/llama';
import { ConfigError, fitMicroBatch, resolveConfig, trainingPlan, type TrainConfig } from '@huatuo/sft';

/** The plan's lines as `huatuo-train plan` prints them. */
export function planLines(name: string, model: LlamaConfig, config: TrainConfig, dtype: 'f16' | 'f32', microBatch: number, plan: MemoryPlan): string[] {
  const base = config.quantize === 'none' ? `${dtype} base` : `${config.quantize} base (embeddings, lm_head and norms ${dtype})`;
  const rows: [string, number][] = [
    ['weights', plan.weights],
    ['LoRA', plan.lora],
    ['LoRA gradients', plan.gradients],
    ['AdamW state', plan.optimizer],
    [`activations (${config.gradientCheckpointing ? 'checkpointed: layer inputs + one layer' : 'every layer'})`, plan.activations],
    ['loss logits (one chunk, and a copy of lm_head)', plan.logits],
    ["workspace (a layer's backward, a product's weight copy)", plan.workspace],
  ];
  return [
    `${name}: ${model.numHiddenLayers} layers, hidden ${model.hiddenSize}, ${base}; LoRA r ${config.loraR} on ${config.loraTargetModules.join(', ')}; micro-batch ${microBatch} x ${config.cutoffLen} tokens${config.gradientCheckpointing ? ', gradient checkpointing' : ''}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(56)} ${formatBytes(v).padStart(10)}`),
    `  ${'peak'.padEnd(56)} ${formatBytes(plan.total).padStart(10)}`,
  ];
}

/** The `plan` subcommand; `print` writes one line. */
export function buildPlanCommand(print: (line: string) => void): Command {
  return new Command('plan')
    .description('print the GPU memory a training run needs (weights, LoRA, AdamW, activations, peak) from a preset or config.json, without loading weights')
    .option('--preset <name>', `model shape: ${Object.keys(llamaPresets).join(', ')}`)
    .option('--base <folder>', 'a Hugging Face LLaMA folder: only its config.json is read')
    .option('--base-dtype <dtype>', 'f16 or f32 (base weights and activations)', 'f16')
    .option('--quantize <format>', 'none, int8 or nf4 (decoder projections)', 'none')
    .option('--gradient-checkpointing [bool]', 'keep only layer inputs, recompute layers in backward (default: on with --quantize int8 or nf4)')
    .option('--micro-batch <n>', 'sequences per forward pass, or auto: the largest that fits --gpu-memory (1 without it)', '4')
    .option('--cutoff-len <n>', 'tokens per sequence', '256')
    .option('--lora-r <n>', 'LoRA rank', '8')
    .option('--lora-target-modules <list>', 'adapted projections', 'q_proj,v_proj')
    .option('--gpu-memory <GiB>', 'check that the run fits in this much GPU memory')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      if ((opts.preset === undefined) === (opts.base === undefined)) throw new ConfigError('--preset', 'give either --preset (e.g. llama-7b) or --base <folder>');
      if (opts.baseDtype !== 'f16' && opts.baseDtype !== 'f32') throw new ConfigError('--base-dtype', `expected f16 or f32, got ${String(opts.baseDtype)}`);
      const config = resolveConfig({
        '--quantize': opts.quantize,
        '--gradient-checkpointing': opts.gradientCheckpointing === true ? 'true' : opts.gradientCheckpointing,
        '--micro-batch': opts.microBatch,
        // A given micro-batch is planned alone (no accumulation); auto picks among the divisors of the recipe's batch.
        '--batch-size': opts.microBatch === 'auto' ? undefined : opts.microBatch,
        '--cutoff-len': opts.cutoffLen,
        '--lora-r': opts.loraR,
        '--lora-target-modules': opts.loraTargetModules,
        '--gpu-memory': opts.gpuMemory ?? '0',
      });
      const name = (opts.preset as string | undefined) ?? (opts.base as string);
      const model = opts.preset !== undefined ? configFromPreset(opts.preset as LlamaPresetName) : await loadLlamaConfig(opts.base as string);
      const dtype = opts.baseDtype;
      const limits = config.gpuMemory > 0 ? { maxBufferSize: Infinity, maxStorageBufferBindingSize: Infinity, totalMemory: config.gpuMemory * 1024 ** 3 } : null;
      const microBatch = config.microBatchSize === 'auto' ? fitMicroBatch(model, config, dtype, limits) : config.microBatchSize;
      const plan = trainingPlan(model, config, dtype, microBatch);
      for (const line of planLines(name, model, config, dtype, microBatch, plan)) print(line);
      if (limits !== null) {
        // A given micro-batch is printed first, so that a refusal follows the figures it refers to.
        if (config.microBatchSize !== 'auto') fitMicroBatch(model, config, dtype, limits);
        print(`fits in --gpu-memory ${config.gpuMemory} GiB${config.microBatchSize === 'auto' ? ` (micro-batch ${microBatch}, the largest that does)` : ''}`);
      }
    });
}
