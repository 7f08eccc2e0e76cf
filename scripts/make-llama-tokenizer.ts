/**
 * Writes LLaMA's 32000-piece tokenizer, taken from the npm package
 * llama-tokenizer-js (MIT), as tokenizer.json, tokenizer.model,
 * tokenizer_config.json and special_tokens_map.json.
 *
 *   node --import tsx scripts/make-llama-tokenizer.ts [out-dir]
 *
 * out-dir defaults to packages/llama/assets/llama-tokenizer.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import llamaTokenizer from 'llama-tokenizer-js';
import { bpeSentencePieceModel, bpeTokenizerJson, llamaSpecialTokensMap, llamaTokenizerConfig, type BpeVocabulary, writeSentencePieceModel } from '@huatuo/llama';

/** LLaMA's pieces and merges as llama-tokenizer-js stores them (merges in priority order). */
export function llamaVocabulary(): BpeVocabulary {
  const pieces = llamaTokenizer.vocabById;
  const merges = [...llamaTokenizer.merges.entries()]
    .sort((a, b) => a[1] - b[1])
    .map(([key]) => {
      const parts = key.split(' ');
      if (parts.length !== 2) throw new Error(`llama-tokenizer-js: merge "${key}" is not two pieces`);
      return parts as [string, string];
    });
  return { pieces, merges };
}

/** File name → contents of every file the script writes. */
export function llamaTokenizerFiles(): Map<string, Uint8Array> {
  const vocab = llamaVocabulary();
  const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n');
  return new Map([
    ['tokenizer.json', json(bpeTokenizerJson(vocab))],
    ['tokenizer.model', writeSentencePieceModel(bpeSentencePieceModel(vocab))],
    ['tokenizer_config.json', json(llamaTokenizerConfig())],
    ['special_tokens_map.json', json(llamaSpecialTokensMap())],
  ]);
}

/** The folder the files are shipped in. */
export const LLAMA_TOKENIZER_ASSETS = resolve(dirname(fileURLToPath(import.meta.url)), '../packages/llama/assets/llama-tokenizer');

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? LLAMA_TOKENIZER_ASSETS);
  await mkdir(out, { recursive: true });
  for (const [name, data] of llamaTokenizerFiles()) {
    const target = join(out, name);
    await writeFile(`${target}.tmp`, data);
    await rename(`${target}.tmp`, target);
    console.log(`${target} (${data.length} bytes)`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main();
}
