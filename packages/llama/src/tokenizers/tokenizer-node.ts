/**
 * Reads the tokenizer of a model folder: `tokenizer.json` when it is there,
 * else SentencePiece's `tokenizer.model`. Node only (reads files).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tokenizer, TokenizerLoadOptions } from './tokenizer.js';
import { TokenizerError } from './tokenizer-errors.js';
import { readTokenizerFiles, tokenizerFromFiles } from './tokenizer-files.js';

/**
 * Reads the tokenizer of the model folder `folder` as transformers' AutoTokenizer does:
 * tokenizer.json when present, else tokenizer.model, each with tokenizer_config.json
 * (see {@link tokenizerFromFiles}); `options.trustTokenizerPatterns` runs tokenizer.json's regular expressions as
 * written (see {@link TokenizerLoadOptions}).
 * Throws `TokenizerError` naming the file when none is there, it is corrupt, or one of its patterns is refused.
 *
 * @example
 * const tok = await loadTokenizer('./llama-7b-hf');
 * tok.encode('the'); // [1, 278]
 */
export async function loadTokenizer(folder: string, options: TokenizerLoadOptions = {}): Promise<Tokenizer> {
  const read = async (file: string): Promise<Uint8Array | undefined> => {
    try {
      return new Uint8Array(await readFile(join(folder, file)));
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      throw new TokenizerError(`${join(folder, file)}: cannot be read (${code ?? (cause as Error).message}); check its permissions`, { file: join(folder, file), cause });
    }
  };
  const files = await readTokenizerFiles(read);
  if (files !== null) return tokenizerFromFiles(files, folder, options);
  throw new TokenizerError(
    `${folder}: has neither tokenizer.json nor tokenizer.model; copy the model's tokenizer into it (LLaMA's own is in the package's assets/llama-tokenizer)`,
    { file: folder },
  );
}

/**
 * The folder of LLaMA's 32000-piece tokenizer shipped with this package
 * (tokenizer.json, tokenizer.model, tokenizer_config.json, special_tokens_map.json).
 *
 * @example
 * const tok = await loadTokenizer(llamaTokenizerDir());
 */
export function llamaTokenizerDir(): string {
  return fileURLToPath(new URL('../../assets/llama-tokenizer', import.meta.url));
}
