// One training run of the page on @huatuo/sft's trainer: the recipe from the knobs, the data and
// memory plan, and the run's files (manifest, data, checkpoints, metrics) in the browser's
// IndexedDB, so a closed or reloaded tab resumes from the last checkpoint.

import { checkMemoryPlan, formatBytes, planMemory, type LoraTargetModule } from '@huatuo/llama';
import {
  attachLora,
  DEFAULT_CONFIG,
  listCheckpoints,
  MED_TEMPLATE,
  planRun,
  prepareRecords,
  readCheckpoint,
  resolveConfig,
  runFiles,
  train,
  type BaseModel,
  type LoraModel,
  type MetricsRow,
  type PreparedData,
  type ProgressEvent,
  type RunPlan,
  type TrainConfig,
  type TrainResult,
} from '@huatuo/sft';
import { deviceInfo } from '@huatuo/tensor';
import { switchAdapterOff } from './chat.js';
import type { DataSource } from './data-source.js';

/** Where the page's run lives in IndexedDB. */
export const RUN_DIR = 'runs/current';
const MANIFEST = `${RUN_DIR}/run.json`;
const DATA = `${RUN_DIR}/data.txt`;

/** The knobs of the page, by TrainConfig field. */
export type Knobs = Pick<
  TrainConfig,
  | 'numEpochs' | 'learningRate' | 'loraR' | 'loraAlpha' | 'loraUseRslora' | 'loraUseDora' | 'cutoffLen' | 'batchSize' | 'valSetSize' | 'evalSteps'
  | 'lrSchedulerType' | 'warmupSteps' | 'warmupRatio' | 'lrSchedulerKwargs' | 'lossNormalization' | 'epochRemainder'
>;

/**
 * The knobs of a stored run's config; a run saved before a knob existed trained with the recipe's
 * value (rsLoRA and DoRA off, linear schedule, micro-batch loss normalization), except that it dropped
 * an epoch's leftover micro-batches, which the recipe now steps on.
 */
export function knobsOf(config: TrainConfig): Knobs {
  const stored = { ...DEFAULT_CONFIG, ...config };
  const { numEpochs, learningRate, loraR, loraAlpha, loraUseRslora, loraUseDora, cutoffLen, batchSize, valSetSize, evalSteps } = stored;
  const { lrSchedulerType, warmupSteps, warmupRatio, lrSchedulerKwargs, lossNormalization } = stored;
  const epochRemainder = config.epochRemainder ?? 'drop';
  return { numEpochs, learningRate, loraR, loraAlpha, loraUseRslora, loraUseDora, cutoffLen, batchSize, valSetSize, evalSteps, lrSchedulerType, warmupSteps, warmupRatio, lrSchedulerKwargs, lossNormalization, epochRemainder };
}

/** What the page fixes in HuaTuo's recipe: every step logged, the last two checkpoints kept in IndexedDB. */
const PAGE_RECIPE: Readonly<TrainConfig> = { ...DEFAULT_CONFIG, loggingSteps: 1, saveTotalLimit: 2, outputDir: RUN_DIR };

/**
 * HuaTuo's recipe with the page's knobs, given as the form holds them (strings, booleans) or typed,
 * by TrainConfig key; parsed and checked by resolveConfig as the command line's flags are, so a bad
 * value is refused with a ConfigError naming its flag. Saves a checkpoint at every evaluation.
 */
export function recipe(knobs: Readonly<Record<string, unknown>>): TrainConfig {
  return resolveConfig({ ...knobs, saveSteps: knobs['evalSteps'] }, PAGE_RECIPE);
}

/** The data and memory plan of a run; `refusal` says why it cannot run and what to change. */
export interface Planned {
  config: TrainConfig;
  data: PreparedData;
  plan: RunPlan;
  refusal: string | null;
}

/**
 * Splits and tokenizes the data and plans memory. A step of one sequence must fit the adapter's
 * buffer limits and `gpuMemory` bytes (WebGPU does not report the GPU's memory; the page asks).
 * Planned on the base as a run trains it: with a fresh adapter on the base's vocabulary and
 * tokenizer, replacing a loaded one that brought its own.
 */
export function planTraining(base: BaseModel, source: DataSource, recipeConfig: TrainConfig, gpuMemory: number): Planned {
  const switchOn = switchAdapterOff(base.model);
  try {
    return planOnBase(base, source, recipeConfig, gpuMemory);
  } finally {
    switchOn();
  }
}

function planOnBase(base: BaseModel, source: DataSource, recipeConfig: TrainConfig, gpuMemory: number): Planned {
  let config = recipeConfig;
  const data = prepareRecords(source.records, source.file, MED_TEMPLATE, config, base);
  let plan = planRun(config, base, data);
  const info = deviceInfo()!;
  const limits = { maxBufferSize: info.maxBufferSize, maxStorageBufferBindingSize: info.maxStorageBufferBindingSize, totalMemory: gpuMemory };
  const lora = { r: config.loraR, targetModules: config.loraTargetModules as LoraTargetModule[], useDora: config.loraUseDora };
  const problem = (mb: number): string | null => {
    try {
      const p = planMemory(base.model.config, { batchSize: mb, seqLen: config.cutoffLen, dtype: base.model.dtype, lora, training: true }, limits);
      checkMemoryPlan(p, limits, `${mb} sequence${mb === 1 ? '' : 's'} of ${config.cutoffLen} tokens`);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  };
  // The micro-batch planRun chose fits the buffer limits; halve it until it fits the memory too.
  let mb = plan.microBatchSize;
  while (mb > 1 && problem(mb) !== null) mb /= 2;
  if (mb !== plan.microBatchSize) {
    config = { ...config, microBatchSize: mb };
    plan = planRun(config, base, data);
  }
  const why = problem(mb);
  const refusal =
    why === null
      ? null
      : `${why}. Lower the cutoff (now ${config.cutoffLen} tokens) or pick a smaller model, or raise the GPU memory if your GPU has ` +
        `more than ${formatBytes(gpuMemory)}; the largest buffer this adapter allows is ${formatBytes(Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize))}.`;
  return { config, data, plan, refusal };
}

/** What the page keeps to resume a run after a reload. */
export interface Manifest {
  config: TrainConfig;
  base: { name: string; demo: boolean };
  data: { file: string; demo: boolean };
  totalSteps: number;
}

/** The run stored in this browser, with its newest checkpoint, or null. */
export async function storedRun(): Promise<{ manifest: Manifest; step: number; history: MetricsRow[]; dataText: string | null } | null> {
  if (!(await runFiles.exists(MANIFEST))) return null;
  const manifest = JSON.parse(await runFiles.readText(MANIFEST)) as Manifest;
  const last = (await listCheckpoints(RUN_DIR)).pop();
  if (!last) return null;
  const { state } = await readCheckpoint(last.dir);
  const dataText = manifest.data.demo ? null : await runFiles.readText(DATA);
  return { manifest, step: state.step, history: state.history, dataText };
}

/** Removes the stored run. */
export async function discardRun(): Promise<void> {
  await runFiles.remove(RUN_DIR);
}

/** Options of {@link runTraining}. */
export interface RunOptions {
  base: BaseModel;
  source: DataSource;
  planned: Planned;
  /** Continue the stored run from its newest checkpoint (the model gets that checkpoint's adapter). */
  resume: boolean;
  /** The adapted model of an earlier call, trained further; a fresh adapter when null. */
  model: LoraModel | null;
  signal: AbortSignal;
  onProgress: (event: ProgressEvent) => void;
}

/** Trains (or resumes) until done or aborted (a checkpoint is written at the abort). */
export async function runTraining(options: RunOptions): Promise<{ model: LoraModel; result: TrainResult }> {
  const { base, source, planned } = options;
  if (!options.resume) {
    await discardRun();
    const manifest: Manifest = {
      config: planned.config,
      base: { name: base.name, demo: base.isDemo },
      data: { file: source.file, demo: source.demo },
      totalSteps: planned.plan.schedule.totalSteps,
    };
    await runFiles.writeFile(MANIFEST, JSON.stringify(manifest, null, 1));
    if (!source.demo) await runFiles.writeFile(DATA, source.text);
  }
  const model = options.model ?? attachLora(base, planned.config);
  const result = await train({
    config: planned.config,
    model,
    train: planned.data.train,
    val: planned.data.val,
    microBatchSize: planned.plan.microBatchSize,
    resume: options.resume ? 'latest' : null,
    signal: options.signal,
    onProgress: options.onProgress,
  });
  return { model, result };
}
