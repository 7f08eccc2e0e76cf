// The command-line flags that override HuaTuo's recipe: each config key's flag, kind and range. Data
// only (no imports but types), so that ConfigError can name the config key of a flag.

import type { TrainConfig } from './config.js';

/**
 * transformers' scheduler names (SchedulerType) that the trainer runs: all but reduce_lr_on_plateau,
 * whose rate follows the evaluation metric rather than the step (REDUCE_ON_PLATEAU_REFUSAL in config.ts says why).
 */
export const LR_SCHEDULER_TYPES = [
  'linear',
  'cosine',
  'cosine_with_restarts',
  'polynomial',
  'constant',
  'constant_with_warmup',
  'inverse_sqrt',
  'cosine_with_min_lr',
  'cosine_warmup_with_min_lr',
  'warmup_stable_decay',
] as const;
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];

type Kind = 'int' | 'number' | 'string' | 'nullable-string' | 'bool' | 'list' | 'int-or-auto' | 'json-numbers';

/** A command-line override of one config key. */
export interface ConfigOption {
  key: keyof TrainConfig;
  flag: string;
  kind: Kind;
  /** Inclusive bounds for numbers. */
  min?: number;
  max?: number;
  /** Exclusive bounds for numbers. */
  above?: number;
  below?: number;
  /** The values a string option may take. */
  choices?: readonly string[];
  help: string;
  /** Where another flag changes the default, how: shown after it in the help. */
  defaultNote?: string;
}

/** Every overridable key, its flag and its check; a CLI registers these. */
export const CONFIG_OPTIONS: readonly ConfigOption[] = [
  { key: 'dataPath', flag: '--data', kind: 'nullable-string', help: 'data file, JSON array, JSONL or Parquet of {instruction, input, output} (default: built-in demo sample)' },
  { key: 'template', flag: '--template', kind: 'string', help: 'prompt template: med_template, literature_template or a template .json path' },
  { key: 'baseModel', flag: '--base', kind: 'nullable-string', help: 'base model: a Hugging Face LLaMA, Mistral or Qwen2 folder (default: the built-in tiny demo model)' },
  { key: 'quantize', flag: '--quantize', kind: 'string', choices: ['none', 'int8', 'nf4'], help: 'frozen base projections: none, int8 (per-row absmax) or nf4 (QLoRA 4-bit)' },
  { key: 'outputDir', flag: '--output-dir', kind: 'string', help: 'folder for checkpoints and the adapter' },
  { key: 'cutoffLen', flag: '--cutoff-len', kind: 'int', min: 2, help: 'longest tokenized example; longer ones are truncated' },
  { key: 'valSetSize', flag: '--val-set-size', kind: 'int', min: 0, help: 'validation records split off (0: none)' },
  { key: 'splitSeed', flag: '--split-seed', kind: 'int', min: 0, help: 'seed of the train/validation split' },
  { key: 'trainOnInputs', flag: '--train-on-inputs', kind: 'bool', help: 'also compute the loss on prompt tokens' },
  { key: 'loraR', flag: '--lora-r', kind: 'int', min: 1, help: 'LoRA rank' },
  { key: 'loraAlpha', flag: '--lora-alpha', kind: 'number', above: 0, help: 'LoRA alpha (scale alpha / r, or alpha / sqrt(r) with --lora-use-rslora)' },
  { key: 'loraDropout', flag: '--lora-dropout', kind: 'number', min: 0, below: 1, help: 'dropout on the LoRA input' },
  { key: 'loraTargetModules', flag: '--lora-target-modules', kind: 'list', help: 'comma-separated projections, e.g. q_proj,v_proj' },
  { key: 'loraUseRslora', flag: '--lora-use-rslora', kind: 'bool', help: "rank-stabilized LoRA (PEFT's use_rslora): scale the update by alpha / sqrt(r) instead of alpha / r" },
  { key: 'loraUseDora', flag: '--lora-use-dora', kind: 'bool', help: "DoRA (PEFT's use_dora): also train a magnitude per output row, the adapted weight being m * (W + scaling B A) / ||W + scaling B A||" },
  {
    key: 'loraModulesToSave',
    flag: '--lora-modules-to-save',
    kind: 'list',
    help: "modules trained in full and saved with the adapter (PEFT's modules_to_save), e.g. embed_tokens,lm_head: f32 copies with AdamW state, 16 bytes per weight",
  },
  { key: 'batchSize', flag: '--batch-size', kind: 'int', min: 1, help: 'effective batch size (micro-batch x accumulation)' },
  { key: 'gradientCheckpointing', flag: '--gradient-checkpointing', kind: 'bool', help: "keep only each decoder layer's input and recompute the layer in backward: less memory, one more forward per step", defaultNote: 'true with --quantize int8 or nf4' },
  { key: 'gpuMemory', flag: '--gpu-memory', kind: 'number', min: 0, help: 'GiB of GPU memory to plan for: the micro-batch is chosen to fit and a run that cannot fit is refused before loading (0: unknown)' },
  { key: 'microBatchSize', flag: '--micro-batch', kind: 'int-or-auto', min: 1, help: 'examples per forward pass, or auto to fit memory' },
  { key: 'padToMultipleOf', flag: '--pad-to-multiple-of', kind: 'int', min: 1, help: 'pad micro-batch length to a multiple of this' },
  { key: 'numEpochs', flag: '--epochs', kind: 'number', above: 0, help: 'training epochs' },
  { key: 'maxSteps', flag: '--max-steps', kind: 'int', min: -1, help: 'total optimizer steps, overriding --epochs (-1: train --epochs)' },
  { key: 'learningRate', flag: '--learning-rate', kind: 'number', above: 0, help: 'peak AdamW learning rate' },
  { key: 'adamBeta1', flag: '--adam-beta1', kind: 'number', min: 0, below: 1, help: 'AdamW beta1' },
  { key: 'adamBeta2', flag: '--adam-beta2', kind: 'number', min: 0, below: 1, help: 'AdamW beta2' },
  { key: 'adamEpsilon', flag: '--adam-epsilon', kind: 'number', above: 0, help: 'AdamW epsilon' },
  { key: 'weightDecay', flag: '--weight-decay', kind: 'number', min: 0, help: 'AdamW decoupled weight decay' },
  { key: 'maxGradNorm', flag: '--max-grad-norm', kind: 'number', min: 0, help: 'clip the global gradient norm to this (0: no clipping)' },
  {
    key: 'lossNormalization',
    flag: '--loss-normalization',
    kind: 'string',
    choices: ['micro-batch', 'tokens'],
    help: "how gradient accumulation averages the loss: micro-batch: each micro-batch's mean over its answer tokens divided by the micro-batches per step (transformers before 4.46, as HuaTuo trained); tokens: the mean over every answer token of the step (transformers' num_items_in_batch since 4.46)",
  },
  {
    key: 'epochRemainder',
    flag: '--epoch-remainder',
    kind: 'string',
    choices: ['step', 'carry', 'drop'],
    help: "an epoch's last micro-batches that do not fill a step (micro-batches per epoch not a multiple of the accumulation): step: they take a step of their own, their losses divided by their count (transformers 4.57; ceil(micro-batches / accumulation) steps per epoch; each step reads the records of one whole batch, as HuaTuo's micro-batch 128 = batch did); carry: their gradients go into the next epoch's first step (transformers 4.28 with accumulation; floor(...) steps per epoch), and logs are 4.28's: the learning rate after the scheduler stepped for the logged step (the next step's, 0 after the last of a linear schedule), the epoch rounded to 2 decimals, and no grad_norm; drop: they are left out (this trainer's earlier runs)",
  },
  { key: 'warmupRatio', flag: '--warmup-ratio', kind: 'number', min: 0, below: 1, help: 'fraction of steps of linear warm-up: ceil(steps x ratio) steps' },
  { key: 'warmupSteps', flag: '--warmup-steps', kind: 'int', min: 0, help: 'steps of linear warm-up, overriding --warmup-ratio when > 0' },
  {
    key: 'lrSchedulerType',
    flag: '--lr-scheduler-type',
    kind: 'string',
    choices: LR_SCHEDULER_TYPES,
    help: "learning rate after the warm-up, as transformers' schedulers: linear decay to 0, cosine (half a cosine wave to 0), cosine_with_restarts (num_cycles decays, each from the peak), polynomial (to lr_end as remaining^power), constant (no warm-up), constant_with_warmup, inverse_sqrt (1 / sqrt(step / warm-up steps)), cosine_with_min_lr (a cosine to min_lr), cosine_warmup_with_min_lr (its variant warming up from warmup_lr_rate or 1 / warm-up steps) or warmup_stable_decay (warm-up, constant, then a decay of num_decay_steps); reduce_lr_on_plateau is refused (its rate follows the evaluation loss)",
  },
  {
    key: 'lrSchedulerKwargs',
    flag: '--lr-scheduler-kwargs',
    kind: 'json-numbers',
    help: 'the schedule\'s arguments as a JSON object, as transformers names them: num_cycles for the cosines (default 0.5; cosine_with_restarts 1), lr_end (default 1e-7) and power (default 1) for polynomial, min_lr or min_lr_rate (one is needed) for cosine_with_min_lr and cosine_warmup_with_min_lr, and warmup_lr_rate for the latter, num_decay_steps (needed), num_stable_steps, warmup_type and decay_type ("linear", "cosine" or "1-sqrt"), min_lr_ratio and num_cycles for warmup_stable_decay, e.g. \'{"num_cycles": 2}\'',
  },
  { key: 'loggingSteps', flag: '--logging-steps', kind: 'int', min: 1, help: 'optimizer steps between log lines' },
  { key: 'evalSteps', flag: '--eval-steps', kind: 'int', min: 1, help: 'optimizer steps between evaluations' },
  { key: 'saveSteps', flag: '--save-steps', kind: 'int', min: 1, help: 'optimizer steps between checkpoints (a multiple of --eval-steps)' },
  { key: 'saveTotalLimit', flag: '--save-total-limit', kind: 'int', min: 1, help: "checkpoints kept, the best by validation loss (best_model_checkpoint) among them, as the Trainer's save_total_limit: the newest N - 1 and the best, or the newest N when the best is one of them; with 1, the newest and the best (2 when they differ), the best alone once the run finishes" },
  {
    key: 'loadBestModelAtEnd',
    flag: '--load-best-model-at-end',
    kind: 'bool',
    help: "load the checkpoint of the best validation loss (best_model_checkpoint) at the end, as the Trainer's load_best_model_at_end: the final adapter is that one; needs --save-steps a multiple of --eval-steps where there is a validation set",
  },
  { key: 'seed', flag: '--seed', kind: 'int', min: 0, help: 'seed of LoRA initialisation, dropout and data order' },
  {
    key: 'precision',
    flag: '--precision',
    kind: 'string',
    choices: ['auto', 'f32', 'mixed'],
    help: 'mixed: f16 base and activations, f32 LoRA weights, gradients, optimizer and loss, with dynamic loss scaling; f32: everything in f32; auto: mixed for a --base folder where the adapter has shader-f16, f32 for the demo model',
  },
];

