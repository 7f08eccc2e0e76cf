// Data and plan of a run, whatever the platform: records split, tokenized with the prompt
// template and checked for answer tokens; the micro-batch, schedule and memory the run will use.
import { formatMemoryPlan } from '@huatuo/llama';
import { trainingPlan } from './memory-plan.js';
import { textTokenizer, tokenizeRecords, type DataWarning, type TokenizedExample } from './batch.js';
import type { TrainConfig } from './config.js';
import { trainingSchedule, type TrainingSchedule } from './schedule.js';
import type { LoadedRecord } from './data.js';
import { ConfigError, DataError } from './errors.js';
import { chooseMicroBatch, type BaseModel } from './lora-model.js';
import type { PromptTemplate } from './prompt.js';
import { checkMicroBatchFits, checkPlanFits } from './preflight.js';
import { splitTrainVal } from './split.js';

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

/**
 * Validates, splits and tokenizes records already read from `file` (named in errors).
 * @example const data = prepareRecords(parseRecords(text, 'qa.jsonl').records, 'qa.jsonl', MED_TEMPLATE, config, base);
 */
export function prepareRecords(records: LoadedRecord[], file: string, template: PromptTemplate, config: TrainConfig, base: BaseModel): PreparedData {
  if (config.valSetSize >= records.length) {
    throw new ConfigError('--val-set-size', `${config.valSetSize} validation records leave none of the ${records.length} in ${file} for training; lower it`);
  }
  const split = splitTrainVal(records, config.valSetSize, config.splitSeed);
  return tokenizeSplit({ file, template, trainRecords: split.train, valRecords: split.val }, config, base);
}

/**
 * Training and validation records already split, tokenized with `base.tokenizer` (the tokenizer of the vocabulary in
 * use: an adapter's that brings its own, else the base's).
 */
export function tokenizeSplit(data: Pick<PreparedData, 'file' | 'template' | 'trainRecords' | 'valRecords'>, config: TrainConfig, base: BaseModel): PreparedData {
  const { file, template } = data;
  const split = { train: data.trainRecords, val: data.valRecords };
  const options = { cutoffLen: config.cutoffLen, trainOnInputs: config.trainOnInputs };
  const tokenizer = textTokenizer(base.tokenizer);
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
  checkMicroBatchFits(base.model, data.train, microBatchSize, { file: data.file, flag: '--micro-batch', shuffled: true });
  checkMicroBatchFits(base.model, data.val, microBatchSize, { file: data.file, flag: '--micro-batch', shuffled: false });
  const plan = trainingPlan(base.model.config, config, base.model.dtype, microBatchSize);
  checkPlanFits(plan);
  return {
    records: { train: data.train.length, val: data.val.length },
    tokens: { train: data.train.reduce((s, e) => s + e.inputIds.length, 0), longest: Math.max(...data.train.map((e) => e.inputIds.length)) },
    schedule,
    microBatchSize,
    memory: `${formatMemoryPlan(plan)} (${config.quantize === 'none' ? base.model.dtype : config.quantize} base${config.gradientCheckpointing ? ', gradient checkpointing' : ''}, micro-batch ${microBatchSize} x ${config.cutoffLen} tokens)`,
  };
}
