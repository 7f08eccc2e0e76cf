/**
 * Finds and reads the tokenizer of a model folder: `tokenizer.json` when it
 * is there, else SentencePiece's `tokenizer.model`. Node only (reads files).
 */
import { SentencePieceTokenizer } from './sentencepiece.js';
import { HfTokenizer, type Tokenizer } from './tokenizer.js';
import { TokenizerError } from './tokenizer-errors.js';

/** The tokenizer files of one model, as read from a folder or fetched. */
export interface TokenizerFiles {
  /** Contents of tokenizer.json. */
  tokenizerJson?: string | Uint8Array;
  /** Contents of tokenizer_config.json (optional, read with tokenizer.json). */
  tokenizerConfigJson?: string | Uint8Array;
  /** Contents of tokenizer.model. */
  tokenizerModel?: Uint8Array;
}

function text(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : new TextDecoder('utf-8', { ignoreBOM: false }).decode(value);
}

/**
 * Builds a tokenizer from file contents: tokenizer.json (with
 * tokenizer_config.json when given) is preferred over tokenizer.model.
 * `where` prefixes file names in errors.
 *
 * @example
 * const tok = tokenizerFromFiles({ tokenizerModel: bytes });
 */
export function tokenizerFromFiles(files: TokenizerFiles, where = ''): Tokenizer {
  const name = (f: string): string => (where === '' ? f : `${where.replace(/\/+$/, '')}/${f}`);
  if (files.tokenizerJson !== undefined) {
    let config: unknown = {};
    if (files.tokenizerConfigJson !== undefined) {
      const file = name('tokenizer_config.json');
      try {
        config = JSON.parse(text(files.tokenizerConfigJson));
      } catch (cause) {
        throw new TokenizerError(`${file}: not valid JSON (${(cause as Error).message}); fix or delete it`, { file, cause });
      }
    }
    return HfTokenizer.fromJson(text(files.tokenizerJson), config, name('tokenizer.json'));
  }
  if (files.tokenizerModel !== undefined) return SentencePieceTokenizer.fromBytes(files.tokenizerModel, name('tokenizer.model'));
  throw new TokenizerError(`${where === '' ? 'tokenizer' : where}: neither tokenizer.json nor tokenizer.model was given; a LLaMA folder needs one of them`);
}

/**
 * Reads the tokenizer of the model folder `folder`: tokenizer.json (with
 * tokenizer_config.json) when present, else tokenizer.model.
 * Throws `TokenizerError` naming the file when none is there or it is corrupt.
 *
 * @example
 * const tok = await loadTokenizer('./llama-7b-hf');
 * tok.encode('the'); // [1, 278]
 */
export async function loadTokenizer(folder: string): Promise<Tokenizer> {
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const read = async (file: string): Promise<Uint8Array | undefined> => {
    try {
      return new Uint8Array(await readFile(join(folder, file)));
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      throw new TokenizerError(`${join(folder, file)}: cannot be read (${code ?? (cause as Error).message}); check its permissions`, { file: join(folder, file), cause });
    }
  };
  const tokenizerJson = await read('tokenizer.json');
  if (tokenizerJson !== undefined) {
    const tokenizerConfigJson = await read('tokenizer_config.json');
    return tokenizerFromFiles(tokenizerConfigJson === undefined ? { tokenizerJson } : { tokenizerJson, tokenizerConfigJson }, folder);
  }
  const tokenizerModel = await read('tokenizer.model');
  if (tokenizerModel !== undefined) return tokenizerFromFiles({ tokenizerModel }, folder);
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
  const url = new URL('../assets/llama-tokenizer/', import.meta.url);
  return decodeURIComponent(url.pathname);
}
