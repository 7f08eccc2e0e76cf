// The steps of a training run in order, shared by the CLI and by library users: data, split,
// tokens, base model and adapter, micro-batch, plan, then the trainer.
import { planMemory, formatBytes, type LoraTargetModule } from '@huatuo/llama';
import { DEMO_DATA_PATH, loadRecords, type LoadedRecord } from './data.js';
import { tokenizeRecords, type DataWarning, type TokenizedExample } from './batch.js';
import { trainingSchedule, type TrainConfig, type TrainingSchedule } from './config.js';
import { ConfigError, DataError } from './errors.js';
import { attachLora, chooseMicroBatch, loadBaseModel, type BaseModel, type BaseModelOptions, type LoraModel } from './model.js';
import { resolveTemplate, type PromptTemplate } from './prompt.js';
import { splitTrainVal } from './split.js';
import { checkOutputDir } from './output-dir.js';
import { withInitAdapter } from './init-adapter.js';
import { runFiles } from './platform/node.js';
import { train, type ProgressEvent, type TrainOptions, type TrainResult } from './trainer.js';

/** Data ready for training: the split records and their tokens. */
export interface PreparedData {
  file: string;
  template: PromptTemplate;
  trainRecords: LoadedRecord[];
  valRecords: LoadedRecord[];
  train: TokenizedExample[];
  val: TokenizedExample[];
  warnings: DataWarning[];
}

/** Loads, validates, splits and tokenizes the data file (or the built-in demo sample). */
export async function prepareData(config: TrainConfig, base: BaseModel): Promise<PreparedData> {
  const file = config.dataPath ?? DEMO_DATA_PATH;
  const template = resolveTemplate(config.template);
  const { records } = await loadRecords(file);
  if (config.valSetSize >= records.length) {
    throw new ConfigError('--val-set-size', `${config.valSetSize} validation records leave none of the ${records.length} in ${file} for training; lower it`);
  }
  const split = splitTrainVal(records, config.valSetSize, config.splitSeed);
  const options = { cutoffLen: config.cutoffLen, trainOnInputs: config.trainOnInputs };
  const tokenizer = textTokenizer(base);
  const trainTokens = tokenizeRecords(split.train, template, tokenizer, options);
  const valTokens = tokenizeRecords(split.val, template, tokenizer, options);
  const usable = trainTokens.examples.filter((e) => e.labels.some((l) => l !== -100));
  if (usable.length === 0) {
    throw new DataError(file, [`no training record has an answer token within --cutoff-len ${config.cutoffLen}; raise it`]);
  }
  return {
    file,
    template,
    trainRecords: split.train,
    valRecords: split.val,
    train: trainTokens.examples,
    val: valTokens.examples,
    warnings: [...trainTokens.warnings, ...valTokens.warnings],
  };
}

function textTokenizer(base: BaseModel) {
  const t = base.tokenizer;
  return {
    encode: (text: string, options?: { addBos?: boolean; addEos?: boolean }) => t.encode(text, options),
    bosId: t.bosId,
    eosId: t.eosId,
    padId: 0,
  };
}

/** What a run will do, printed by `--dry-run` and before training. */
export interface RunPlan {
  records: { train: number; val: number };
  tokens: { train: number; longest: number };
  schedule: TrainingSchedule;
  microBatchSize: number;
  memory: string;
}

export function planRun(config: TrainConfig, base: BaseModel, data: PreparedData): RunPlan {
  const microBatchSize = chooseMicroBatch(base.model, config);
  const schedule = trainingSchedule(config, data.train.length, microBatchSize);
  const plan = planMemory(base.model.config, {
    batchSize: microBatchSize,
    seqLen: config.cutoffLen,
    dtype: base.model.dtype,
    lora: { r: config.loraR, targetModules: config.loraTargetModules as LoraTargetModule[] },
    training: true,
  });
  return {
    records: { train: data.train.length, val: data.val.length },
    tokens: { train: data.train.reduce((s, e) => s + e.inputIds.length, 0), longest: Math.max(...data.train.map((e) => e.inputIds.length)) },
    schedule,
    microBatchSize,
    memory: `weights ${formatBytes(plan.weights)}, LoRA ${formatBytes(plan.lora + plan.gradients + plan.optimizer)}, activations ${formatBytes(plan.activations + plan.logits)}, total ${formatBytes(plan.total)}`,
  };
}

/** Options of {@link runTraining}. */
export interface RunOptions {
  config: TrainConfig;
  /**
   * A PEFT adapter folder whose weights start the training (HuaTuo's resume from an adapter file);
   * its r, alpha, dropout and target modules replace the config's.
   */
  initAdapter?: string | null;
  /** Config keys set explicitly (flags given): with `initAdapter`, one differing from the adapter is refused. */
  explicitKeys?: readonly (keyof TrainConfig)[];
  resume?: string | null;
  /** Replace the run already in the output folder (see {@link TrainOptions.overwriteOutputDir}). */
  overwriteOutputDir?: boolean;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  onPlan?: (plan: RunPlan, data: PreparedData, base: BaseModel) => void | Promise<void>;
  stopAfterStep?: number;
  /** Validate and plan only. */
  dryRun?: boolean;
  /** Options of the base model (the demo model's size when config.baseModel is null). */
  baseModel?: BaseModelOptions;
}

/** Everything a finished (or dry) run leaves for the caller. */
export interface RunOutcome {
  base: BaseModel;
  model: LoraModel;
  data: PreparedData;
  plan: RunPlan;
  result: TrainResult | null;
}

/** Loads everything, validates it, then trains (unless dry-run). */
export async function runTraining(options: RunOptions): Promise<RunOutcome> {
  const config = options.initAdapter ? await withInitAdapter(runFiles, options.config, options.initAdapter, options.explicitKeys ?? []) : options.config;
  await checkOutputDir(runFiles, config.outputDir, { resume: Boolean(options.resume), overwrite: options.overwriteOutputDir ?? false });
  const base = await loadBaseModel(config.baseModel, undefined, options.baseModel);
  const data = await prepareData(config, base);
  const model = attachLora(base, config);
  if (options.initAdapter) await model.loadAdapter(options.initAdapter);
  const plan = planRun(config, base, data);
  await options.onPlan?.(plan, data, base);
  if (options.dryRun) return { base, model, data, plan, result: null };
  const result = await train({
    config,
    model,
    train: data.train,
    val: data.val,
    microBatchSize: plan.microBatchSize,
    resume: options.resume ?? null,
    overwriteOutputDir: options.overwriteOutputDir ?? false,
    signal: options.signal,
    onProgress: options.onProgress,
    stopAfterStep: options.stopAfterStep,
  });
  return { base, model, data, plan, result };
}
