/**
 * Builds a tokenizer from the contents of a model's tokenizer files:
 * `tokenizer.json` when given, else SentencePiece's `tokenizer.model`.
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
