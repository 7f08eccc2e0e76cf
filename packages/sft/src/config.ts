// Every value of HuaTuo's recipe in one commented block (alpaca-lora's finetune.py with
// HuaTuo's settings), the flags that override them, and their checks.

import { ConfigError } from './errors.js';

/** LLaMA's projection names a LoRA adapter may target (PEFT key names). */
export const LLAMA_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** The training recipe. Defaults in {@link DEFAULT_CONFIG}. */
export interface TrainConfig {
  /** Data file (JSON array or JSONL); null trains on the built-in demo sample. */
  dataPath: string | null;
  /** Built-in template name or template JSON path. */
  template: string;
  /** Base model folder (safetensors + tokenizer); null lets the caller choose. */
  baseModel: string | null;
  /** Frozen decoder projections: 'none' (the base's dtype), 'int8' or 'nf4' (QLoRA's 4-bit NormalFloat). */
  quantize: 'none' | 'int8' | 'nf4';
  /** Where checkpoints and the final adapter go. */
  outputDir: string;
  cutoffLen: number;
  valSetSize: number;
  splitSeed: number;
  trainOnInputs: boolean;
  loraR: number;
  loraAlpha: number;
  loraDropout: number;
  loraTargetModules: string[];
  loraBias: 'none';
  batchSize: number;
  microBatchSize: number | 'auto';
  /** Recompute each decoder layer's activations in backward instead of keeping them. */
  gradientCheckpointing: boolean;
  /** GiB of GPU memory the run must fit in (WebGPU does not report it); 0: unknown, only binding limits are checked. */
  gpuMemory: number;
  padToMultipleOf: number;
  padId: number;
  paddingSide: 'left' | 'right';
  numEpochs: number;
  /** Total optimizer steps when positive, overriding numEpochs; -1: numEpochs decides. */
  maxSteps: number;
  learningRate: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  weightDecay: number;
  maxGradNorm: number;
  warmupRatio: number;
  lrScheduler: 'linear';
  loggingSteps: number;
  evalSteps: number;
  saveSteps: number;
  saveTotalLimit: number;
  loadBestModelAtEnd: boolean;
  seed: number;
  /**
   * 'mixed': f16 base weights and activations, f32 statistics, loss, LoRA master weights, their
   * gradients and AdamW state, with dynamic loss scaling (PyTorch autocast + GradScaler).
   * 'f32': everything in f32. 'auto': mixed for a Hugging Face base where the adapter has
   * shader-f16, else f32 (the built-in demo model trains in f32).
   */
  precision: Precision;
}

/** Numeric precision of training: see {@link TrainConfig.precision}. */
export type Precision = 'auto' | 'f32' | 'mixed';

/** HuaTuo's recipe. */
export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze({
  // data
  dataPath: null, // HuaTuo trains on ../shared/data/huatuo/llama_data.json (8,658 JSONL records)
  template: 'med_template', // HuaTuo's prompt_template_name
  baseModel: null,
  quantize: 'none', // HuaTuo loads LLaMA in 8 bits (load_in_8bit); 'int8' is the nearest here, 'nf4' QLoRA's
  outputDir: './lora-llama-med',
  cutoffLen: 256, // tokens, BOS and EOS included; longer sequences are cut, losing their EOS
  valSetSize: 500, // validation records split off before training
  splitSeed: 2023, // seed of the train/validation permutation (NumPy PCG64, as datasets uses)
  trainOnInputs: false, // labels -100 on prompt tokens: loss on the answer only
  // LoRA (PEFT LoraConfig)
  loraR: 8,
  loraAlpha: 16, // update scaled by alpha / r = 2
  loraDropout: 0.05,
  loraTargetModules: ['q_proj', 'v_proj'],
  loraBias: 'none',
  // batching
  batchSize: 128, // effective batch: microBatchSize * gradient accumulation steps
  microBatchSize: 'auto', // chosen to fit device memory; --micro-batch overrides
  gradientCheckpointing: false, // TrainingArguments.gradient_checkpointing: keep layer inputs only, recompute in backward; on by default with --quantize int8|nf4 (as PEFT's prepare_model_for_kbit_training)
  gpuMemory: 0, // GiB the plan must fit; 0: unknown (WebGPU does not say), only binding limits are checked
  padToMultipleOf: 8, // DataCollatorForSeq2Seq(pad_to_multiple_of=8)
  padId: 0, // tokenizer.pad_token_id = 0 (unk), distinct from EOS
  paddingSide: 'left', // tokenizer.padding_side = "left"
  // optimisation (Hugging Face Trainer defaults unless HuaTuo sets them)
  numEpochs: 10,
  maxSteps: -1, // TrainingArguments.max_steps: when positive, the total optimizer steps (epochs then ignored)
  learningRate: 3e-4, // AdamW
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  weightDecay: 0,
  maxGradNorm: 1.0, // clip the global gradient norm
  warmupRatio: 0.1, // linear warm-up over the first 10% of optimizer steps
  lrScheduler: 'linear', // then linear decay to 0 at the last step
  // logging, evaluation, checkpoints (counted in optimizer steps)
  loggingSteps: 8,
  evalSteps: 32,
  saveSteps: 32,
  saveTotalLimit: 5, // keep the last 5 checkpoints, plus the best by validation loss
  loadBestModelAtEnd: true,
  seed: 42, // TrainingArguments.seed: LoRA init, dropout, data order
  // numerics
  precision: 'auto', // mixed (f16 with f32 master weights and loss scaling) for a base folder where shader-f16 exists, else f32
});

/**
 * What `huatuo-train` changes for the built-in demo sample (a few hundred records): a
 * validation set and a batch small enough that evaluation and checkpoints happen.
 */
export const DEMO_OVERRIDES: Readonly<Partial<TrainConfig>> = Object.freeze({
  valSetSize: 24,
  batchSize: 16,
  loggingSteps: 2,
  evalSteps: 8,
  saveSteps: 8,
});

/** Decoding settings of HuaTuo's infer.py. */
export interface GenerationConfig {
  numBeams: number;
  maxNewTokens: number;
  doSample: boolean;
  temperature: number;
  topP: number;
  topK: number;
}

/** HuaTuo's inference: beam search with 4 beams; the sampling values apply only with doSample. */
export const DEFAULT_GENERATION: Readonly<GenerationConfig> = Object.freeze({
  numBeams: 4,
  maxNewTokens: 256,
  doSample: false,
  temperature: 0.1,
  topP: 0.75,
  topK: 40,
});

type Kind = 'int' | 'number' | 'string' | 'nullable-string' | 'bool' | 'list' | 'int-or-auto';

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
}

/** Every overridable key, its flag and its check; a CLI registers these. */
export const CONFIG_OPTIONS: readonly ConfigOption[] = [
  { key: 'dataPath', flag: '--data', kind: 'nullable-string', help: 'data file, JSON array or JSONL of {instruction, input, output} (default: built-in demo sample)' },
  { key: 'template', flag: '--template', kind: 'string', help: 'prompt template: med_template, literature_template or a template .json path' },
  { key: 'baseModel', flag: '--base-model', kind: 'nullable-string', help: 'base LLaMA model folder' },
  { key: 'quantize', flag: '--quantize', kind: 'string', choices: ['none', 'int8', 'nf4'], help: 'frozen base projections: none, int8 (per-row absmax) or nf4 (QLoRA 4-bit)' },
  { key: 'outputDir', flag: '--output-dir', kind: 'string', help: 'folder for checkpoints and the adapter' },
  { key: 'cutoffLen', flag: '--cutoff-len', kind: 'int', min: 2, help: 'longest tokenized example; longer ones are truncated' },
  { key: 'valSetSize', flag: '--val-set-size', kind: 'int', min: 0, help: 'validation records split off (0: none)' },
  { key: 'splitSeed', flag: '--split-seed', kind: 'int', min: 0, help: 'seed of the train/validation split' },
  { key: 'trainOnInputs', flag: '--train-on-inputs', kind: 'bool', help: 'also compute the loss on prompt tokens' },
  { key: 'loraR', flag: '--lora-r', kind: 'int', min: 1, help: 'LoRA rank' },
  { key: 'loraAlpha', flag: '--lora-alpha', kind: 'number', above: 0, help: 'LoRA alpha (scale alpha / r)' },
  { key: 'loraDropout', flag: '--lora-dropout', kind: 'number', min: 0, below: 1, help: 'dropout on the LoRA input' },
  { key: 'loraTargetModules', flag: '--lora-target-modules', kind: 'list', help: 'comma-separated projections, e.g. q_proj,v_proj' },
  { key: 'batchSize', flag: '--batch-size', kind: 'int', min: 1, help: 'effective batch size (micro-batch x accumulation)' },
  { key: 'gradientCheckpointing', flag: '--gradient-checkpointing', kind: 'bool', help: "keep only each decoder layer's input and recompute the layer in backward: less memory, one more forward per step; on by default with --quantize int8 or nf4" },
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
  { key: 'warmupRatio', flag: '--warmup-ratio', kind: 'number', min: 0, below: 1, help: 'fraction of steps of linear warm-up' },
  { key: 'loggingSteps', flag: '--logging-steps', kind: 'int', min: 1, help: 'optimizer steps between log lines' },
  { key: 'evalSteps', flag: '--eval-steps', kind: 'int', min: 1, help: 'optimizer steps between evaluations' },
  { key: 'saveSteps', flag: '--save-steps', kind: 'int', min: 1, help: 'optimizer steps between checkpoints (a multiple of --eval-steps)' },
  { key: 'saveTotalLimit', flag: '--save-total-limit', kind: 'int', min: 1, help: 'recent checkpoints kept (the best is kept too)' },
  { key: 'seed', flag: '--seed', kind: 'int', min: 0, help: 'seed of LoRA initialisation, dropout and data order' },
  {
    key: 'precision',
    flag: '--precision',
    kind: 'string',
    choices: ['auto', 'f32', 'mixed'],
    help: 'mixed: f16 base and activations, f32 LoRA weights, gradients, optimizer and loss, with dynamic loss scaling; f32: everything in f32; auto: mixed for a --base folder where the adapter has shader-f16, f32 for the demo model',
  },
];

const OPTION_BY_KEY = new Map(CONFIG_OPTIONS.map((o) => [o.key as string, o]));
const OPTION_BY_FLAG = new Map(CONFIG_OPTIONS.map((o) => [o.flag, o]));

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function parseNumber(option: ConfigOption, value: unknown, integer: boolean): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new ConfigError(option.flag, `expected ${integer ? 'an integer' : 'a number'}, got ${describe(value)}`);
  }
  const range = (): string =>
    [option.min !== undefined ? `>= ${option.min}` : '', option.above !== undefined ? `> ${option.above}` : '', option.max !== undefined ? `<= ${option.max}` : '', option.below !== undefined ? `< ${option.below}` : '']
      .filter(Boolean)
      .join(' and ');
  if ((option.min !== undefined && n < option.min) || (option.above !== undefined && n <= option.above) || (option.max !== undefined && n > option.max) || (option.below !== undefined && n >= option.below)) {
    throw new ConfigError(option.flag, `expected a value ${range()}, got ${describe(value)}`);
  }
  return n;
}

/** Parses one override value (a CLI string, or an already typed value) for `option`. */
function parseValue(option: ConfigOption, value: unknown): unknown {
  switch (option.kind) {
    case 'int':
      return parseNumber(option, value, true);
    case 'number':
      return parseNumber(option, value, false);
    case 'int-or-auto':
      return value === 'auto' ? 'auto' : parseNumber(option, value, true);
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === 'yes') return true;
      if (value === 'false' || value === '0' || value === 'no') return false;
      throw new ConfigError(option.flag, `expected true or false, got ${describe(value)}`);
    case 'string':
    case 'nullable-string':
      if (value === null && option.kind === 'nullable-string') return null;
      if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(option.flag, `expected a non-empty string, got ${describe(value)}`);
      if (option.choices !== undefined && !option.choices.includes(value)) throw new ConfigError(option.flag, `expected one of ${option.choices.join(', ')}, got ${describe(value)}`);
      return value;
    case 'list': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : null;
      if (!items || items.some((s) => typeof s !== 'string')) throw new ConfigError(option.flag, `expected a comma-separated list, got ${describe(value)}`);
      const list = (items as string[]).map((s) => s.trim()).filter((s) => s !== '');
      if (list.length === 0) throw new ConfigError(option.flag, 'expected at least one entry');
      return list;
    }
  }
}

/**
 * The recipe with overrides applied and checked. Overrides are keyed by config key
 * (`cutoffLen`) or flag (`--cutoff-len`); values may be CLI strings or typed values;
 * undefined values are skipped. `--quantize int8|nf4` turns gradient checkpointing on unless
 * `--gradient-checkpointing` is given too.
 * @throws ConfigError naming the flag, the value got and the range expected.
 * @example resolveConfig({ '--micro-batch': '4' }).microBatchSize === 4
 */
export function resolveConfig(overrides: Readonly<Record<string, unknown>> = {}, base: Readonly<TrainConfig> = DEFAULT_CONFIG): TrainConfig {
  const config: TrainConfig = { ...base, loraTargetModules: [...base.loraTargetModules] };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const option = OPTION_BY_KEY.get(name) ?? OPTION_BY_FLAG.get(name);
    if (!option) {
      throw new ConfigError(name.startsWith('--') ? name : `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, `unknown option; known: ${CONFIG_OPTIONS.map((o) => o.flag).join(', ')}`);
    }
    (config as unknown as Record<string, unknown>)[option.key] = parseValue(option, value);
  }
  // A quantized base trains with checkpointing unless told otherwise, as PEFT's
  // prepare_model_for_kbit_training(use_gradient_checkpointing=True) and QLoRA do: LLaMA-7B with
  // HuaTuo's recipe plans 7.20 GiB with an int8 base, 13.81 GiB without checkpointing.
  const given = (key: keyof TrainConfig) => Object.entries(overrides).some(([name, v]) => v !== undefined && (OPTION_BY_KEY.get(name) ?? OPTION_BY_FLAG.get(name))?.key === key);
  if (given('quantize') && config.quantize !== 'none' && !given('gradientCheckpointing')) config.gradientCheckpointing = true;
  checkConfig(config);
  return config;
}

/**
 * The precision a run trains in. 'auto' is 'mixed' for a Hugging Face base where the adapter has
 * shader-f16 and 'f32' otherwise, and 'f32' for the built-in demo model (`demo`): it is small
 * enough that f16 saves no memory that matters, and on lavapipe its steps run slower in f16.
 * @throws ConfigError when 'mixed' is asked of an adapter without shader-f16.
 * @example resolvePrecision('auto', true) === 'mixed'
 */
export function resolvePrecision(precision: Precision, hasShaderF16: boolean, demo = false): 'f32' | 'mixed' {
  if (precision === 'auto') return hasShaderF16 && !demo ? 'mixed' : 'f32';
  if (precision === 'mixed' && !hasShaderF16) {
    throw new ConfigError('--precision', 'mixed computes in f16, which needs the adapter feature shader-f16; this adapter lacks it: use --precision f32');
  }
  return precision;
}

/** Checks the relations between values that no single flag can check. */
export function checkConfig(config: Readonly<TrainConfig>): void {
  if (config.maxSteps === 0) {
    throw new ConfigError('--max-steps', 'expected a positive number of optimizer steps, or -1 to train --epochs; got 0');
  }
  for (const m of config.loraTargetModules) {
    if (!(LLAMA_LORA_TARGETS as readonly string[]).includes(m)) {
      throw new ConfigError('--lora-target-modules', `unknown module ${JSON.stringify(m)}; LLaMA's are ${LLAMA_LORA_TARGETS.join(', ')}`);
    }
  }
  if (config.microBatchSize !== 'auto') {
    if (config.microBatchSize > config.batchSize || config.batchSize % config.microBatchSize !== 0) {
      throw new ConfigError('--micro-batch', `${config.microBatchSize} must divide --batch-size ${config.batchSize}, so that gradient accumulation makes up the batch exactly`);
    }
  }
  if (config.loadBestModelAtEnd && config.saveSteps % config.evalSteps !== 0) {
    throw new ConfigError('--save-steps', `${config.saveSteps} must be a multiple of --eval-steps ${config.evalSteps}, so every checkpoint has a validation loss to pick the best by`);
  }
}

/** Step counts of a run, as the Hugging Face Trainer derives them. */
export interface TrainingSchedule {
  microBatchSize: number;
  gradientAccumulationSteps: number;
  /** ceil(nTrain / microBatchSize): a DataLoader without drop_last. */
  microBatchesPerEpoch: number;
  /** max(1, floor(microBatchesPerEpoch / gradientAccumulationSteps)). */
  stepsPerEpoch: number;
  /** maxSteps when positive, else ceil(numEpochs * stepsPerEpoch). */
  totalSteps: number;
  /** ceil(totalSteps * warmupRatio). */
  warmupSteps: number;
}

/**
 * The optimizer-step schedule for `nTrain` training records and a chosen micro-batch size.
 * @example trainingSchedule(DEFAULT_CONFIG, 8158, 8).totalSteps === 630
 */
export function trainingSchedule(config: Readonly<TrainConfig>, nTrain: number, microBatchSize: number): TrainingSchedule {
  if (!Number.isInteger(microBatchSize) || microBatchSize < 1 || config.batchSize % microBatchSize !== 0) {
    throw new ConfigError('--micro-batch', `${microBatchSize} must be a positive integer dividing --batch-size ${config.batchSize}`);
  }
  if (!Number.isInteger(nTrain) || nTrain < 1) throw new RangeError(`trainingSchedule: nTrain must be a positive integer, got ${nTrain}`);
  const gradientAccumulationSteps = config.batchSize / microBatchSize;
  const microBatchesPerEpoch = Math.ceil(nTrain / microBatchSize);
  const stepsPerEpoch = Math.max(1, Math.floor(microBatchesPerEpoch / gradientAccumulationSteps));
  const totalSteps = config.maxSteps > 0 ? config.maxSteps : Math.ceil(config.numEpochs * stepsPerEpoch);
  const warmupSteps = Math.ceil(totalSteps * config.warmupRatio);
  return { microBatchSize, gradientAccumulationSteps, microBatchesPerEpoch, stepsPerEpoch, totalSteps, warmupSteps };
}

/**
 * The learning rate at optimizer step `step` (0-based) of transformers'
 * get_linear_schedule_with_warmup: step / warmup during warm-up, then linear to 0.
 * @example learningRateAt(0, schedule, 3e-4) === 0
 */
export function learningRateAt(step: number, schedule: Pick<TrainingSchedule, 'totalSteps' | 'warmupSteps'>, peak: number): number {
  const { totalSteps, warmupSteps } = schedule;
  if (step < warmupSteps) return (peak * step) / Math.max(1, warmupSteps);
  return peak * Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}
