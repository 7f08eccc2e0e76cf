// Node side of config: read `config.json` from a Hugging Face model folder.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseLlamaConfig, withGenerationConfig, type LlamaConfig } from './config.js';
import { ModelConfigError } from '../errors.js';

/**
 * Reads and validates `<folder>/config.json`, with the stop tokens of `generation_config.json`
 * when the folder has one (see withGenerationConfig).
 *
 * @example
 * const cfg = await loadLlamaConfig('models/llama-7b');
 */
export async function loadLlamaConfig(folder: string): Promise<LlamaConfig> {
  const path = join(folder, 'config.json');
  const json = await readJson(path);
  if (json === undefined) throw new ModelConfigError(path, undefined, 'file not found; pass a Hugging Face model folder holding config.json');
  const config = parseLlamaConfig(json, path);
  const generationPath = join(folder, 'generation_config.json');
  const generation = await readJson(generationPath);
  return generation === undefined ? config : withGenerationConfig(config, generation, generationPath);
}

/** The decoded JSON of `path`, or undefined when there is no such file. */
async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'ENOENT') return undefined;
    throw new ModelConfigError(path, undefined, `cannot be read (${typeof code === 'string' ? code : err instanceof Error ? err.message : String(err)}); check that it is a readable file`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError(path, undefined, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}
