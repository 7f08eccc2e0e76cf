// Public surface of @huatuo/kg: knowledge-grounded instruction data generation.

export { KgError, GraphFormatError, OutputFormatError, OptionError, ApiError, UnusableRepliesError, ExhaustedError } from './errors.js';
export type { EntityClass, KgEntity, SkippedRecord, LoadedGraph, CmekgRecord } from './graph.js';
export { ENTITY_CLASSES, KNOWN_CLASS_NAMES, classOf, parseGraph, loadGraph, toCmekg } from './graph.js';
export { shippedGraphPath, loadShippedGraph } from './shipped-graph.js';
export type { KnowledgeSample, SamplerOptions } from './sample.js';
export { KnowledgeSampler, sampleKey, knowledgeKey, mulberry32 } from './sample.js';
export type { QaPair } from './templates.js';
export { templateQa } from './templates.js';
export type { DropReason } from './checks.js';
export { DROP_REASONS, LONG_VALUE_CHARS, normalizeText, charNgrams, ngramSimilarity, NearDuplicateIndex, mentions, checkGrounding } from './checks.js';
export type { ChatClientOptions, ChatResult } from './llm.js';
export { SYSTEM_PROMPT, buildPrompt, readPromptKnowledge, parseModelReply, chatCompletionsUrl, ChatClient } from './llm.js';
export type { InstructionRecord, ExistingOutput } from './output.js';
export { readExistingOutput, RecordWriter } from './output.js';
export type { GenerateOptions, GenerateSummary } from './generate.js';
export { DEFAULT_MAX_CONSECUTIVE_REJECTS, generateData } from './generate.js';
export type { GenDataIo } from './cli.js';
export { buildGenDataCommand } from './cli.js';
