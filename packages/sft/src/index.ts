// @huatuo/sft: HuaTuo's input-only supervised fine-tuning of LLaMA with LoRA on WebGPU. The Node entry:
// everything browser.ts exports, then what needs disk paths, a model folder or a server.

export * from './browser.js';

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
