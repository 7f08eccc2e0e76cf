// Public surface of @huatuo/llama in a browser (the "browser" export condition): index.ts less
// the *-node modules. Folders come in as Files (openCheckpointFromFiles, tokenizerFromFiles).

// Errors
export { FormatError, SafetensorsError, ModelConfigError, MemoryError, AdapterError, ModelError } from './errors.js';

// Config: Hugging Face config.json and presets
export { llamaPresets, parseLlamaConfig, toHfConfigJson, configFromPreset } from './config.js';
export type { LlamaConfig, LlamaConfigOverrides, LlamaPresetName, TorchDType } from './config.js';

// Byte sources: random-access reads from files, Blobs and memory
export { blobSource, bytesSource } from './source.js';
export type { ByteSource } from './source.js';

// Float conversions: f32, f16 and bf16 bit patterns
export {
  f32BitsToF16Bits,
  f16BitsToNumber,
  numberToF16Bits,
  bf16BitsToNumber,
  f16ToF32,
  bf16ToF32,
  f32ToF16,
  bf16ToF16,
  f32ToBf16,
} from './dtype-convert.js';

// Safetensors: streaming reader and writers
export { SafetensorsFile, convertFloatBytes } from './safetensors.js';
export type { HostFloatDType, HostFloatArray } from './safetensors.js';
export { safetensorsDTypeSizes, isSafetensorsDType, maxHeaderBytes } from './safetensors-header.js';
export type { SafetensorsDType, TensorInfo } from './safetensors-header.js';
export { planSafetensors, serializeSafetensors } from './safetensors-write.js';
export type { TensorData, TensorToWrite, SafetensorsOrder, SafetensorsWriteOptions, SafetensorsPlan } from './safetensors-write.js';
export {
  Checkpoint,
  openCheckpointFromFiles,
  parseSafetensorsIndex,
  safetensorsIndexName,
  safetensorsSingleName,
} from './safetensors-checkpoint.js';
export type {
  CheckpointTensorInfo,
  LoadProgress,
  IterateOptions,
  LoadedTensor,
  SafetensorsIndex,
} from './safetensors-checkpoint.js';

// Tokenizers: tokenizer.json (via @huggingface/tokenizers) and SentencePiece tokenizer.model
export { TokenizerError } from './tokenizer-errors.js';
export { HfTokenizer, createByteStreamDecoder, pieceToBytes } from './tokenizer.js';
export type { Tokenizer, EncodeOptions, DecodeOptions, StreamDecoder, PieceBytes } from './tokenizer.js';
export { SentencePieceTokenizer } from './sentencepiece.js';
export { PieceType, parseSentencePieceModel, writeSentencePieceModel } from './sentencepiece-model.js';
export type { SentencePiece, SentencePieceModel } from './sentencepiece-model.js';
export { bpeTokenizerJson, bpeSentencePieceModel, llamaTokenizerConfig, llamaSpecialTokensMap } from './tokenizer-convert.js';
export type { BpeVocabulary } from './tokenizer-convert.js';
export { tokenizerFromFiles } from './tokenizer-files.js';
export type { TokenizerFiles } from './tokenizer-files.js';

// Model: LLaMA on @huatuo/tensor, its weights and KV cache
export { LlamaModel, DecoderLayer } from './model.js';
export type { ForwardOptions, LossOptions } from './model.js';
export { lossChunkRows } from './chunked-loss.js';
export { Linear } from './linear.js';
export type { LoraWeights } from './linear.js';
export { KvCache } from './kv-cache.js';
export { createRandomLlama, expectedWeights, modelTensorsToWrite, quantizeModel, readLinearWeight } from './weights.js';
export type { WeightSpec, ModelOptions, RandomModelOptions, Quantization } from './weights.js';
export { loadLlamaFromCheckpoint } from './weights-load.js';
export type { LoadLlamaOptions } from './weights-load.js';

// Memory planning
export { planMemory, checkMemoryPlan, formatMemoryPlan, formatBytes, projectionBytes, splitRows, mlpChunkRows } from './memory.js';
export type { MemoryLimits, MemoryPlanOptions, MemoryPlan, TensorSplit } from './memory.js';

// LoRA in PEFT's format
export { loraTargetModules, defaultLoraConfig, resolveLoraConfig, parsePeftConfig, toPeftConfigJson, peftKey, modulePath } from './lora-config.js';
export type { LoraConfig, LoraTargetModule } from './lora-config.js';
export { applyLora, adaptedLinears, removeLora, mergeAdapter, unmergeAdapter, setAdapterWeights, adapterTensorsToWrite } from './lora.js';
export type { ApplyLoraOptions } from './lora.js';
export { serializeAdapter, adapterConfigText, loadAdapterFromFiles, adapterConfigName, adapterWeightsName } from './adapter-files.js';
export type { AdapterFiles } from './adapter-files.js';

// Generation
export { generate } from './generate.js';
export type { GenerateOptions, Generation, TokenEvent } from './generate-options.js';
