// @huatuo/sft: HuaTuo's input-only supervised fine-tuning of LLaMA with LoRA on WebGPU. The Node entry:
// browser.ts's exports, then what needs disk paths, a model folder or a server (a test checks that this
// entry exports every name browser.ts does).

// Recipe
export { DEFAULT_CONFIG, DEMO_OVERRIDES, DEFAULT_GENERATION, LLAMA_LORA_TARGETS, LR_SCHEDULER_KWARGS, LR_SCHEDULER_TYPES, WSD_CURVES, checkConfig, resolvePrecision } from './config.js';
export type { TrainConfig, EpochRemainder, GenerationConfig, LossNormalization, LrSchedulerType, Precision } from './config.js';
export { CONFIG_OPTIONS, resolveConfig } from './config-flags.js';
export type { ConfigOption } from './config-flags.js';
export { trainingSchedule, learningRateAt } from './schedule.js';
export type { TrainingSchedule } from './schedule.js';

// Data, prompts, tokens and batches
export { parseRecords, describeLocation, type RecordKind } from './data.js';
export type { QaRecord, LoadedRecord, LoadedData, RecordLocation } from './data.js';
export { readParquetRecords, isParquetName, hasParquetMagic } from './data-parquet.js';
export { MED_TEMPLATE, LITERATURE_TEMPLATE, BUILTIN_TEMPLATES, parseTemplate, generatePrompt, getResponse } from './prompt.js';
export type { PromptTemplate } from './prompt.js';
export { chatTemplateFromFiles, renderChatTemplate, isChatTemplate } from './chat-template.js';
export type { ChatTemplate, ChatTemplateFiles } from './chat-template.js';
export { IGNORE_INDEX, textTokenizer, tokenizeText, tokenizeRecord, tokenizeRecords, collate, chunkOrder, epochOrder } from './batch.js';
export type { TextTokenizer, TokenizeOptions, TokenizedExample, DataWarning, Batch, CollateOptions } from './batch.js';
export { splitTrainVal } from './split.js';
export type { TrainValSplit } from './split.js';
export { Pcg64, numpyPermutation } from './rng.js';

// Model, training and checkpoints
export { attachLora, baseModelOf, chooseMicroBatch, demoBaseModel, deviceLimits, LoraModel, DEMO_MODEL_NAME } from './lora-model.js';
export type { BaseModel } from './lora-model.js';
export { adapterTokenizerOptions } from './adapter-tokenizer.js';
export type { AdapterTokenizerFiles } from './adapter-tokenizer.js';
export { train } from './trainer.js';
export { evaluate } from './evaluate.js';
export type { TrainableModel, DeviceBatch, TrainOptions, TrainResult, ProgressEvent } from './train-types.js';
export { prepareRecords, planRun } from './prepare.js';
export { fitMicroBatch, trainingPlan } from './memory-plan.js';
export type { PreparedData, RunPlan } from './prepare.js';
export { runFiles } from './run-files.js';
export type { RunFiles } from './run-files.js';
export { writeCheckpoint, readCheckpoint, listCheckpoints, pruneCheckpoints, checkpointDir, replacedCheckpoint } from './checkpoint.js';
export type { TrainerState, CheckpointPayload, SavedCheckpoint } from './checkpoint.js';
export type { HfTrainerState, HfLogEntry, HfTrainLog, HfEvalLog, HfTrainEndLog } from './hf-trainer-state.js';
export { writeLossCurve, appendMetrics, writeMetrics } from './metrics.js';
export { lossCurveSvg } from './loss-curve.js';
export type { LossCurveOptions } from './loss-curve.js';
export type { MetricsRow } from './metrics.js';

// Inference
export { answerQuestions, questionPrompter } from './answer.js';
export type { Answer, AnswerOptions, QuestionPrompt, QuestionPrompter } from './answer.js';

// Errors
export { DataError, TemplateError, ChatTemplateException, ConfigError, CheckpointError, TrainingError } from './errors.js';

// Data and prompts from files
export { DEMO_DATA_PATH, loadRecords, loadRecordsSync } from './data-node.js';
export { resolveTemplate, loadTemplate } from './prompt-node.js';

// Base models, preflight checks and whole runs
export { baseDtypeOption, loadAdapterWithTokenizer, loadBaseModel, removeAdapterWithTokenizer } from './base-model.js';
export type { BaseModelOptions } from './base-model.js';
export { checkContext, checkMicroBatchFits, checkPlanFits } from './preflight.js';
export type { MicroBatchSource } from './preflight.js';
export { earlierRun } from './output-dir.js';
export { findResumePoint } from './resume.js';
export { checkMergeOut } from './merge-out-node.js';
export { withInitAdapter } from './init-adapter.js';
export { prepareData, runTraining } from './pipeline.js';
export type { RunOptions, RunOutcome } from './pipeline.js';
export { pretrainBase, pretrainDemoBase, demoBaseTexts, baseParameters, textExample } from './demo-base.js';
export type { PretrainOptions } from './demo-base.js';

// Serving: an OpenAI-compatible API
export { DEFAULT_MAX_CHOICES, DEFAULT_STREAM_KEEP_ALIVE_MS, startServer } from './serve.js';
export type { ServeOptions, RunningServer } from './serve.js';
export { DEFAULT_SERVE_GENERATION } from './serve-request.js';
export type { ServeGenerationDefaults } from './serve-request.js';
export { chatToInstruction } from './serve-chat.js';
export type { ChatMessage } from './serve-chat.js';
export { loadChatTemplate } from './chat-template-node.js';
export type { ServeEvent } from './serve-queue.js';
export { longestPieceChars, retryAfterSeconds } from './serve-limits.js';
export type { RunningEstimate } from './serve-limits.js';
