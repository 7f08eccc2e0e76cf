// Every value of HuaTuo's recipe in one commented block (alpaca-lora's finetune.py with HuaTuo's
// settings), the decoding settings of its inference, and the checks across values. The flags that
// override the recipe are in config-flags.ts, the step schedule it implies in schedule.ts.

import { AdapterError, resolveLoraConfig, savedModules } from '@huatuo/llama';
import { LR_SCHEDULER_TYPES, type LrSchedulerType } from './config-options.js';
import { ConfigError } from './errors.js';

/** LLaMA's projection names a LoRA adapter may target (PEFT key names). */
export const LLAMA_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** The training recipe. Defaults in {@link DEFAULT_CONFIG}. */
export interface TrainConfig {
  /** Data file (JSON array, JSONL or Parquet); null trains on the built-in demo sample. */
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
  /** Rank-stabilized LoRA (PEFT's use_rslora): the update is scaled by alpha / sqrt(r) instead of alpha / r. */
  loraUseRslora: boolean;
  /** DoRA (PEFT's use_dora): a trained magnitude per output row rescales W + scaling B A by m / ||W + scaling B A||. */
  loraUseDora: boolean;
  /**
   * Modules trained and saved whole beside the adapter (PEFT's modules_to_save): embed_tokens and lm_head, each a full
   * f32 copy of the base's that trains with AdamW. Empty: none.
   */
  loraModulesToSave: string[];
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
  /**
   * How the loss of a step's micro-batches adds up. 'micro-batch': each micro-batch's mean over its
   * answer tokens, divided by the micro-batches per step (transformers before 4.46, which HuaTuo
   * trained with). 'tokens': each micro-batch's sum over its answer tokens divided by the answer tokens
   * of the whole step (transformers' num_items_in_batch since 4.46), so the step's gradient is the mean
   * over every answer token of the step however they fall into micro-batches.
   */
  lossNormalization: LossNormalization;
  /**
   * What an epoch's last micro-batches do when they do not fill an optimizer step (the epoch's micro-batches
   * are not a multiple of the gradient accumulation steps). 'step': they take a step of their own at the
   * epoch's end, their losses divided by their count, as transformers' Trainer since its epoch-end remainder
   * step (checked against 4.57.6): ceil(M / accumulation) steps per epoch. A step then reads the records of
   * one batch of the whole-batch run whatever the micro-batch, as HuaTuo ran (micro-batch = batch, 128).
   * 'carry': their gradients carry into the next step, which the next epoch's first micro-batches complete,
   * as transformers 4.28's Trainer counts micro-batches across epochs: floor(M / accumulation) steps per
   * epoch in the schedule, every step of `accumulation` micro-batches. 'drop': they are left out (this
   * trainer before the option).
   */
  epochRemainder: EpochRemainder;
  /** Warm-up as a fraction of the optimizer steps: ceil(totalSteps * warmupRatio) steps, unless warmupSteps is positive. */
  warmupRatio: number;
  /** Warm-up steps when positive, overriding warmupRatio (TrainingArguments.get_warmup_steps). */
  warmupSteps: number;
  /** The schedule after the warm-up (TrainingArguments.lr_scheduler_type); 'constant' has no warm-up. */
  lrSchedulerType: LrSchedulerType;
  /** The schedule's own arguments (TrainingArguments.lr_scheduler_kwargs): see {@link LR_SCHEDULER_KWARGS}. */
  lrSchedulerKwargs: LrSchedulerKwargs;
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

export { LR_SCHEDULER_TYPES, type LrSchedulerType };

/** A schedule's arguments (TrainingArguments.lr_scheduler_kwargs): numbers, and warmup_stable_decay's warmup_type and decay_type. */
export type LrSchedulerKwargs = Readonly<Record<string, number | string>>;

/**
 * Each schedule's arguments and their defaults, as transformers' get_*_schedule functions take them;
 * null where the function's default is None (min_lr or min_lr_rate, one of which must be given;
 * num_decay_steps, which must be given; num_stable_steps, by default the steps left after warm-up and
 * decay; warmup_lr_rate, by default a warm-up from 1 / warm-up steps). get_scheduler passes inverse_sqrt
 * no arguments: its timescale is the warm-up steps, or 10,000 without warm-up.
 */
export const LR_SCHEDULER_KWARGS: Readonly<Record<LrSchedulerType, Readonly<Record<string, number | string | null>>>> = Object.freeze({
  linear: {},
  cosine: { num_cycles: 0.5 },
  cosine_with_restarts: { num_cycles: 1 },
  polynomial: { lr_end: 1e-7, power: 1 },
  constant: {},
  constant_with_warmup: {},
  inverse_sqrt: {},
  cosine_with_min_lr: { num_cycles: 0.5, min_lr: null, min_lr_rate: null },
  cosine_warmup_with_min_lr: { num_cycles: 0.5, min_lr: null, min_lr_rate: null, warmup_lr_rate: null },
  warmup_stable_decay: { num_decay_steps: null, num_stable_steps: null, warmup_type: 'linear', decay_type: 'cosine', min_lr_ratio: 0, num_cycles: 0.5 },
});

/** The shapes of warmup_stable_decay's warm-up and decay (its warmup_type and decay_type). */
export const WSD_CURVES = ['linear', 'cosine', '1-sqrt'] as const;

/** Why --lr-scheduler-type reduce_lr_on_plateau is refused. */
export const REDUCE_ON_PLATEAU_REFUSAL =
  "reduce_lr_on_plateau is not supported: torch's ReduceLROnPlateau lowers the rate when the evaluation metric stops improving, so each step's rate depends on the validation losses before it and on the scheduler's saved state, while this trainer plans every step's rate from the step (checkpoints record the schedule and a resume checks it). Choose a schedule of the step, e.g. cosine_with_min_lr or warmup_stable_decay";

/** How a step's micro-batch losses add up: see {@link TrainConfig.lossNormalization}. */
export type LossNormalization = 'micro-batch' | 'tokens';

/** What an epoch's leftover micro-batches do: see {@link TrainConfig.epochRemainder}. */
export type EpochRemainder = 'carry' | 'step' | 'drop';

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
  loraUseRslora: false, // PEFT's use_rslora: scale by alpha / sqrt(r)
  loraUseDora: false, // PEFT's use_dora: weight-decomposed LoRA
  loraModulesToSave: [], // PEFT's modules_to_save: none, as HuaTuo trains
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
  lossNormalization: 'micro-batch', // mean per micro-batch over the accumulation steps (transformers < 4.46, as HuaTuo ran); 'tokens': over the step's answer tokens
  epochRemainder: 'step', // an epoch's leftover micro-batches take a step of their own: HuaTuo's own steps (its micro-batch 128 was the whole batch, so an epoch ended with a step of its last records) at any micro-batch, as the current Trainer does
  warmupRatio: 0.1, // linear warm-up over the first 10% of optimizer steps
  warmupSteps: 0, // TrainingArguments.warmup_steps: when positive, the warm-up steps (the ratio then ignored)
  lrSchedulerType: 'linear', // then linear decay to 0 at the last step
  lrSchedulerKwargs: Object.freeze({}), // TrainingArguments.lr_scheduler_kwargs: num_cycles of cosine schedules, lr_end and power of polynomial, ... (LR_SCHEDULER_KWARGS)
  // logging, evaluation, checkpoints (counted in optimizer steps)
  loggingSteps: 8,
  evalSteps: 32,
  saveSteps: 32,
  saveTotalLimit: 5, // checkpoints kept: the newest 4 and the best (best_model_checkpoint), or the newest 5 when it is among them (the Trainer's _rotate_checkpoints)
  loadBestModelAtEnd: true, // HuaTuo's load_best_model_at_end, where --val-set-size is above 0 (without a validation set nothing is evaluated)
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
  try {
    savedModules(resolveLoraConfig({ modulesToSave: config.loraModulesToSave }), 1);
  } catch (e) {
    if (!(e instanceof AdapterError)) throw e;
    throw new ConfigError('--lora-modules-to-save', e.message.replace(/^LoraConfig: modulesToSave /, ''));
  }
  if (config.microBatchSize !== 'auto') {
    if (config.microBatchSize > config.batchSize || config.batchSize % config.microBatchSize !== 0) {
      throw new ConfigError('--micro-batch', `${config.microBatchSize} must divide --batch-size ${config.batchSize}, so that gradient accumulation makes up the batch exactly`);
    }
  }
  checkLrSchedulerKwargs(config);
  // TrainingArguments.__post_init__'s check for load_best_model_at_end; HuaTuo loads the best model only with a validation set.
  if (config.loadBestModelAtEnd && config.valSetSize > 0 && config.saveSteps % config.evalSteps !== 0) {
    throw new ConfigError(
      '--save-steps',
      `${config.saveSteps} must be a round multiple of --eval-steps ${config.evalSteps} with --load-best-model-at-end (on by default, as HuaTuo trains), ` +
        `as transformers' TrainingArguments requires, so that every checkpoint has a validation loss to pick the best by; or give --load-best-model-at-end false`,
    );
  }
}

/** Checks --lr-scheduler-kwargs against the schedule's arguments as transformers' get_*_schedule functions would. */
function checkLrSchedulerKwargs(config: Readonly<TrainConfig>): void {
  const type = config.lrSchedulerType;
  const kwargs = config.lrSchedulerKwargs;
  const accepted = LR_SCHEDULER_KWARGS[type];
  const fail = (message: string): never => {
    throw new ConfigError('--lr-scheduler-kwargs', message);
  };
  for (const [name, value] of Object.entries(kwargs)) {
    if (!(name in accepted)) {
      const names = Object.keys(accepted);
      const why = type === 'inverse_sqrt' ? " (transformers' get_scheduler passes it none: its timescale is the warm-up steps, or 10,000 without warm-up)" : '';
      fail(`--lr-scheduler-type ${type} takes ${names.length > 0 ? `only ${names.join(', ')}` : 'no arguments'}${why}, got ${JSON.stringify(name)}`);
    }
    if (typeof accepted[name] === 'string') {
      if (typeof value !== 'string' || !(WSD_CURVES as readonly string[]).includes(value)) fail(`${name} must be one of ${WSD_CURVES.map((c) => JSON.stringify(c)).join(', ')}, got ${JSON.stringify(value)}`);
      continue;
    }
    if (typeof value !== 'number') return fail(`${name} must be a number, got ${JSON.stringify(value)}`);
    if (name === 'num_cycles' && !(value > 0)) fail(`num_cycles must be > 0, got ${value}`);
    if (name === 'lr_end' && !(value >= 0 && value < config.learningRate)) fail(`lr_end must be >= 0 and smaller than --learning-rate ${config.learningRate}, got ${value}`);
    // The decay reaches remaining 0 at the last step, which Python cannot raise to a negative power.
    if (name === 'power' && !(value >= 0)) fail(`power must be >= 0 (transformers raises 0 to it at the last step), got ${value}`);
    if (['min_lr', 'min_lr_rate', 'min_lr_ratio', 'warmup_lr_rate'].includes(name) && !(value >= 0)) fail(`${name} must be >= 0, got ${value}`);
    if ((name === 'num_decay_steps' || name === 'num_stable_steps') && !(Number.isInteger(value) && value >= 0)) fail(`${name} must be an integer >= 0, got ${value}`);
  }
  if (type === 'cosine_with_min_lr' || type === 'cosine_warmup_with_min_lr') {
    if ('min_lr' in kwargs && 'min_lr_rate' in kwargs) fail(`--lr-scheduler-type ${type} takes one of min_lr or min_lr_rate, got both`);
    if (!('min_lr' in kwargs) && !('min_lr_rate' in kwargs)) fail(`--lr-scheduler-type ${type} needs min_lr (the final rate) or min_lr_rate (its fraction of --learning-rate), e.g. '{"min_lr_rate": 0.1}'`);
  }
  if (type === 'warmup_stable_decay' && !('num_decay_steps' in kwargs)) fail(`--lr-scheduler-type warmup_stable_decay needs num_decay_steps, the steps of its decay, e.g. '{"num_decay_steps": 100}'`);
  if (type === 'polynomial' && !(config.learningRate > ((kwargs.lr_end as number | undefined) ?? (LR_SCHEDULER_KWARGS.polynomial.lr_end as number)))) {
    throw new ConfigError('--learning-rate', `${config.learningRate} must be larger than the polynomial schedule's lr_end ${LR_SCHEDULER_KWARGS.polynomial.lr_end}; set a smaller lr_end in --lr-scheduler-kwargs`);
  }
}
