// Public surface of @huatuo/llama in Node: everything browser.ts exports, then the modules named *-node,
// which use Node built-ins.

export * from './browser.js';

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

// Tokenizers: from a model folder
export { loadTokenizer, llamaTokenizerDir } from './tokenizers/tokenizer-node.js';

// Model: from a model folder
export { loadLlama } from './model/weights-node.js';

// LoRA: adapters and merged models on disk
export { saveAdapter, loadAdapter, saveMergedModel } from './lora/lora-node.js';
export type { SaveMergedOptions } from './lora/lora-node.js';
