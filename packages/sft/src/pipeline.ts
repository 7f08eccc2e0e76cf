// The steps of a training run in order, shared by the CLI and by library users: data, split,
// tokens, base model and adapter, micro-batch, plan, then the trainer.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { configFromPreset, loadLlamaConfig } from '@huatuo/llama';
import { hasF16, type FloatDType } from '@huatuo/tensor';
import { resolvePrecision, type TrainConfig } from './config.js';
import { DEMO_DATA_PATH, loadRecords } from './data-node.js';
import { loadAdapterWithTokenizer, loadBaseModel, type BaseModelOptions } from './base-model.js';
import { attachLora, type BaseModel, type LoraModel } from './lora-model.js';
import { deviceLimits } from './lora-model.js';
import { fitMicroBatch } from './memory-plan.js';
import { planRun, prepareRecords, tokenizeSplit, type PreparedData, type RunPlan } from './prepare.js';
import { resolveTemplate } from './prompt-node.js';
import { checkContext } from './preflight.js';
import { checkAdapterOutputDir, checkOutputDir, resumesRunIn } from './output-dir.js';
import { withInitAdapter } from './init-adapter.js';
import { runFiles } from './run-files.js';
import { findResumePoint, readResumePoint } from './resume.js';
import { train } from './trainer.js';
import type { ProgressEvent, TrainOptions, TrainResult } from './train-types.js';

export type { PreparedData, RunPlan } from './prepare.js';

/** Loads, validates, splits and tokenizes the data file (or the built-in demo sample). */
export async function prepareData(config: TrainConfig, base: BaseModel): Promise<PreparedData> {
  const file = config.dataPath ?? DEMO_DATA_PATH;
  const template = resolveTemplate(config.template);
  const { records } = await loadRecords(file);
  return prepareRecords(records, file, template, config, base);
}

/** Options of {@link runTraining}. */
export interface RunOptions {
  config: TrainConfig;
  /**
   * A PEFT adapter folder whose weights start the training (HuaTuo's resume from an adapter file);
   * its r, alpha, dropout and target modules replace the config's. One that brings its own vocabulary (embed_tokens and
   * lm_head in modules_to_save, resized) brings the tokenizer in its folder: the data is tokenized with it, and the run's
   * adapters are saved with its files.
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
  /**
   * Called with the base model and the data before the adapter is attached, unless dry-run; what
   * it returns replaces the data. The demonstration trains its stand-in base here.
   */
  prepareBase?: (base: BaseModel, data: PreparedData) => Promise<PreparedData | void>;
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

/** Refuses, from config.json alone and before any weight loads, a run whose plan cannot fit (naming the flag). */
async function checkRunFits(config: TrainConfig, dtype: FloatDType, baseOptions: BaseModelOptions | undefined): Promise<void> {
  const limits = deviceLimits(config);
  if (limits === null) return;
  if (config.baseModel !== null && !existsSync(join(config.baseModel, 'config.json'))) return; // the loader says what is missing
  const model = config.baseModel === null ? configFromPreset('tiny', baseOptions?.demoConfig ?? {}) : await loadLlamaConfig(config.baseModel);
  fitMicroBatch(model, config, dtype, limits);
}

/** Loads everything, validates it, then trains (unless dry-run). */
export async function runTraining(options: RunOptions): Promise<RunOutcome> {
  const config = options.initAdapter ? await withInitAdapter(runFiles, options.config, options.initAdapter, options.explicitKeys ?? []) : options.config;
  await checkOutputDir(runFiles, config.outputDir, { resume: resumesRunIn(runFiles, config.outputDir, options.resume), overwrite: options.overwriteOutputDir ?? false });
  if (options.resume) await findResumePoint(options.resume, config.outputDir);
  // Mixed precision keeps the frozen base in f16 (autocast's f16 copies of the weights, made once).
  const precision = resolvePrecision(config.precision, hasF16(), config.baseModel === null);
  const dtype = precision === 'mixed' ? 'f16' : 'f32';
  await checkRunFits(config, dtype, options.baseModel);
  const base = await loadBaseModel(config.baseModel, undefined, { quantize: config.quantize, dtype, ...options.baseModel });
  checkContext(config.cutoffLen, base.model, base.name);
  const prepared = await prepareData(config, base);
  let data = (!options.dryRun && (await options.prepareBase?.(base, prepared))) || prepared;
  const model = attachLora(base, config);
  if (options.initAdapter) {
    // An adapter that brings its own vocabulary brings its tokenizer (Chinese-LLaMA-Alpaca's), which the run tokenizes
    // with and its adapters are saved with.
    const trust = { trustTokenizerPatterns: options.baseModel?.trustTokenizerPatterns ?? false };
    if ((await loadAdapterWithTokenizer(base, options.initAdapter, trust, '--init-adapter')) !== null) {
      data = tokenizeSplit(data, config, base);
      await checkAdapterOutputDir(runFiles, config.outputDir, base.model);
    }
  }
  const plan = planRun(config, base, data);
  await options.onPlan?.(plan, data, base);
  if (options.dryRun) {
    // What the real run reads before its first step: the checkpoint's state, optimizer and adapter.
    if (options.resume) {
      const run = { config, train: data.train, val: data.val, microBatchSize: plan.microBatchSize, precision: model.dtype === 'f16' ? ('mixed' as const) : ('f32' as const) };
      await model.loadAdapter((await readResumePoint(options.resume, run)).dir);
    }
    return { base, model, data, plan, result: null };
  }
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
