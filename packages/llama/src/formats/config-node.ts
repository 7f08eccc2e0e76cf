// Node side of config: read `config.json` from a Hugging Face model folder.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseLlamaConfig, type LlamaConfig } from './config.js';
import { ModelConfigError } from '../errors.js';

/**
 * Reads and validates `<folder>/config.json`.
 *
 * @example
 * const cfg = await loadLlamaConfig('models/llama-7b');
 */
export async function loadLlamaConfig(folder: string): Promise<LlamaConfig> {
  const path = join(folder, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code === 'ENOENT') {
      throw new ModelConfigError(path, undefined, 'file not found; pass a Hugging Face model folder holding config.json');
    }
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError(path, undefined, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  return parseLlamaConfig(json, path);
}
