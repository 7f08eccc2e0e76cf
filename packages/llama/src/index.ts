// Public surface of @huatuo/llama in Node: browser.ts's exports, then the modules named *-node, which use
// Node built-ins (a test checks that this entry exports every name browser.ts does).

// Errors
export { FormatError, SafetensorsError, TorchCheckpointError, ModelConfigError, MemoryError, AdapterError, ModelError } from './errors.js';

// Config: Hugging Face config.json and presets
export { llamaPresets, parseLlamaConfig, withGenerationConfig, toHfConfigJson, configFromPreset } from './formats/config.js';
export type { LlamaConfig, LlamaConfigOverrides, LlamaModelType, LlamaPresetName, TorchDType } from './formats/config.js';
export type { LlamaRopeScaling } from './formats/rope-scaling.js';
export { derivedMaxModelLen, describeMaxModelLen, checkedMaxModelLen } from './formats/context-length.js';

// Byte sources: random-access reads from files, Blobs and memory
export { blobSource, bytesSource } from './formats/source.js';
export type { ByteSource } from './formats/source.js';

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
} from './formats/dtype-convert.js';

// Safetensors: streaming reader and writers
export { SafetensorsFile, convertFloatBytes } from './formats/safetensors.js';
export type { HostFloatDType, HostFloatArray } from './formats/safetensors.js';
export { safetensorsDTypeSizes, isSafetensorsDType, maxHeaderBytes } from './formats/safetensors-header.js';
export type { SafetensorsDType, TensorInfo } from './formats/safetensors-header.js';
export { planSafetensors, serializeSafetensors } from './formats/safetensors-write.js';
export type { TensorData, TensorToWrite, SafetensorsOrder, SafetensorsWriteOptions, SafetensorsPlan } from './formats/safetensors-write.js';
// PyTorch .bin checkpoints (torch.save's zip format) and one interface over both formats
export { TorchBinFile } from './formats/torch-bin.js';
export { openTensorFile } from './formats/tensor-file.js';
export type { TensorFile } from './formats/tensor-file.js';
export {
  Checkpoint,
  openCheckpointFromFiles,
  parseSafetensorsIndex,
  safetensorsIndexName,
  safetensorsSingleName,
  torchBinIndexName,
  torchBinSingleName,
} from './formats/safetensors-checkpoint.js';
export type {
  CheckpointTensorInfo,
  LoadProgress,
  IterateOptions,
  LoadedTensor,
  SafetensorsIndex,
} from './formats/safetensors-checkpoint.js';

// Tokenizers: tokenizer.json (via @huggingface/tokenizers) and SentencePiece tokenizer.model
export { TokenizerError } from './tokenizers/tokenizer-errors.js';
export { HfTokenizer, createByteStreamDecoder, pieceToBytes } from './tokenizers/tokenizer.js';
export type { Tokenizer, TokenizerLoadOptions, EncodeOptions, DecodeOptions, StreamDecoder, PieceBytes } from './tokenizers/tokenizer.js';
export { SentencePieceTokenizer } from './tokenizers/sentencepiece.js';
export { cleanUpTokenization, llamaTokenizerSettings } from './tokenizers/tokenizer-config.js';
export type { LlamaTokenizerSettings, SettingFiles } from './tokenizers/tokenizer-config.js';
export { PieceType, parseSentencePieceModel, writeSentencePieceModel } from './tokenizers/sentencepiece-model.js';
export type { SentencePiece, SentencePieceModel } from './tokenizers/sentencepiece-model.js';
export { bpeTokenizerJson, bpeSentencePieceModel, llamaTokenizerConfig, llamaSpecialTokensMap } from './tokenizers/tokenizer-convert.js';
export type { BpeVocabulary } from './tokenizers/tokenizer-convert.js';
export { readTokenizerFiles, tokenizerFileNames, tokenizerFromFiles } from './tokenizers/tokenizer-files.js';
export type { TokenizerFileBytes, TokenizerFiles } from './tokenizers/tokenizer-files.js';

// Model: LLaMA on @huatuo/tensor, its weights and KV cache
export { LlamaModel } from './model/model.js';
export { DecoderLayer } from './model/decoder-layer.js';
export type { ForwardOptions, LossOptions } from './model/model.js';
export { lossChunkRows } from './model/chunked-loss.js';
export { Linear } from './model/linear.js';
export type { LoraWeights } from './model/linear.js';
export { KvCache } from './model/kv-cache.js';
export { RotaryFrequencies } from './model/rotary.js';
export { createRandomLlama, expectedWeights, modelTensorsToWrite, quantizeModel, readLinearWeight } from './model/weights.js';
export type { WeightSpec, ModelOptions, RandomModelOptions, Quantization } from './model/weights.js';
export { loadLlamaFromCheckpoint } from './model/weights-load.js';
export type { LoadLlamaOptions } from './model/weights-load.js';

// Memory planning
export { planMemory, inferencePlan, checkMemoryPlan, formatMemoryPlan } from './model/memory.js';
export { formatBytes, projectionBytes, splitRows, mlpChunkRows } from './model/tensor-sizes.js';
export type { MemoryLimits, MemoryPlanOptions, MemoryPlan, TensorSplit } from './model/memory.js';

// LoRA in PEFT's format
export { loraTargetModules, defaultLoraConfig, resolveLoraConfig, describeTargets, peftKey, peftMagnitudeKey, peftSavedEmbedKey, peftSavedLmHeadKey, modulePath } from './lora/lora-config.js';
export { parsePeftConfig, toPeftConfigJson } from './lora/peft-config.js';
export { loraModules, savedModules } from './lora/lora-targets.js';
export type { LoraModule, SavedModules } from './lora/lora-targets.js';
export type { LoraConfig, LoraTargetModule } from './lora/lora-config.js';
export { applyLora, adaptedLinears, removeLora, mergeAdapter, unmergeAdapter, setAdapterWeights, adapterTensorsToWrite, doraMergeScale } from './lora/lora.js';
export type { ApplyLoraOptions, CheckedAdapter } from './lora/lora.js';
export { serializeAdapter, adapterConfigText, loadAdapterFromFiles, staleTokenizerFiles, adapterConfigName, adapterWeightsName, adapterTorchWeightsName } from './lora/adapter-files.js';
export type { AdapterFiles, AdapterTokenizer, LoadAdapterOptions } from './lora/adapter-files.js';

// Generation
export { generate } from './generate/generate.js';
export { promptLogprobs } from './generate/prompt-logprobs.js';
export { findStopString, type StopMatch } from './generate/stop-strings.js';
export type { PromptTokenLogprobs } from './generate/prompt-logprobs.js';
export type { FinishEvent, GenerateOptions, Generation, PromptLogprobsEvent, TokenEvent } from './generate/generate-options.js';

// Config: read config.json from a folder
export { loadLlamaConfig } from './formats/config-node.js';

// Byte sources: files on disk
export { openFileSource } from './formats/source-node.js';

// Safetensors: files, checkpoint folders and sharded writes on disk
export {
  openSafetensors,
  openCheckpoint,
  writeSafetensors,
  writeShardedCheckpoint,
  shardFileName,
} from './formats/safetensors-node.js';
export type { ShardedWriteOptions, ShardedWriteResult } from './formats/safetensors-node.js';

// Atomic file writes (temp file, fsync, rename)
export { writeFileAtomic, syncDir } from './formats/write-atomic-node.js';
export type { WriteFileAtomicOptions } from './formats/write-atomic-node.js';

// Folder saves that commit whole (a staging folder and a commit), and the completion of one that was interrupted
export { saveFilesTogether, finishInterruptedSave, saveStagingName, saveWaitMs } from './formats/folder-save-node.js';
export { lockFolderForSave } from './formats/folder-save-lock-node.js';
export type { FolderSaveLock } from './formats/folder-save-lock-node.js';
export { pickedFolderFiles, pickedFolderOf, pickedSubfoldersHolding, saveLockName, SaveInProgressError } from './formats/folder-save.js';
export type { PickedSave, SaveLockHolder } from './formats/folder-save.js';
export type { InterruptedSave } from './formats/folder-save-node.js';

// Tokenizers: from a model folder
export { loadTokenizer, llamaTokenizerDir } from './tokenizers/tokenizer-node.js';

// Model: from a model folder
export { loadLlama } from './model/weights-node.js';

// LoRA: adapters and merged models on disk
export { saveAdapter, loadAdapter, saveMergedModel, checkMergedModelFolder } from './lora/lora-node.js';
export type { SaveMergedOptions } from './lora/lora-node.js';
