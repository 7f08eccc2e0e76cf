// Where a training run keeps its files (checkpoints, metrics, the final adapter): the folder
// operations the trainer needs, on disk in Node and in IndexedDB in a browser (see platform/).

import type { LlamaModel, LoadAdapterOptions } from '@huatuo/llama';
import { runFiles as platformFiles } from '#platform';

/**
 * The file operations of a training run. Paths are '/'-separated strings (Node: real paths;
 * browser: keys of one IndexedDB store). A folder rename is the commit of a checkpoint.
 */
export interface RunFiles {
  /** Joins path segments. */
  join(...parts: string[]): string;
  /** Whether `path` names an entry directly inside the folder `dir` (paths compared resolved). */
  isInside(path: string, dir: string): boolean;
  /** Whether a file or a folder (a path with files under it) exists. */
  exists(path: string): Promise<boolean>;
  /** Names directly inside a folder; [] when there is none. */
  list(dir: string): Promise<string[]>;
  readBytes(path: string): Promise<Uint8Array>;
  readText(path: string): Promise<string>;
  /** Writes a whole file atomically (the old content or the new, never a mix), creating its folder. */
  writeFile(path: string, data: string | Uint8Array): Promise<void>;
  appendText(path: string, text: string): Promise<void>;
  /** Removes a file or a folder with everything in it; nothing when it does not exist. */
  remove(path: string): Promise<void>;
  /** Renames a file (replacing one at the target) or a folder (the target folder must not exist). */
  rename(from: string, to: string): Promise<void>;
  /**
   * Writes the model's PEFT adapter (adapter_config.json, adapter_model.safetensors) into `dir`, with the tokenizer files
   * of an adapter that brings its own vocabulary (the model's `savedModules.tokenizerFiles`).
   */
  saveAdapter(model: LlamaModel, dir: string, baseModel: string): Promise<void>;
  /** Loads the PEFT adapter in `dir` into the model (see loadAdapterFromFiles' options). */
  loadAdapter(model: LlamaModel, dir: string, options?: LoadAdapterOptions): Promise<void>;
}

/** This platform's run files: Node's file system, or IndexedDB in a browser. */
export const runFiles: RunFiles = platformFiles;
