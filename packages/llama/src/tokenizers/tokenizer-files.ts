/**
 * Builds a tokenizer from the contents of a model's tokenizer files:
 * `tokenizer.json` when given, else SentencePiece's `tokenizer.model`, each
 * with the settings of `tokenizer_config.json`.
 */
import { SentencePieceTokenizer } from './sentencepiece.js';
import { HfTokenizer, type Tokenizer } from './tokenizer.js';
import { isLlamaTokenizerClass } from './tokenizer-config.js';
import { TokenizerError } from './tokenizer-errors.js';

/** The tokenizer files of one model, as read from a folder or fetched. */
export interface TokenizerFiles {
  /** Contents of tokenizer.json. */
  tokenizerJson?: string | Uint8Array;
  /** Contents of tokenizer_config.json (optional, read with either file). */
  tokenizerConfigJson?: string | Uint8Array;
  /** Contents of tokenizer.model. */
  tokenizerModel?: Uint8Array;
}

function text(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : new TextDecoder('utf-8', { ignoreBOM: false }).decode(value);
}

/**
 * True when transformers builds the tokenizer from tokenizer.model even though tokenizer.json is
 * there: LlamaTokenizerFast converts from the slow tokenizer whenever `add_prefix_space` is set.
 */
function convertsFromModel(config: Record<string, unknown>): boolean {
  return isLlamaTokenizerClass(config.tokenizer_class) && typeof config.add_prefix_space === 'boolean';
}

/**
 * Builds a tokenizer from file contents as transformers' AutoTokenizer does: tokenizer.json is
 * preferred over tokenizer.model, except for a LLaMA tokenizer_config.json that sets
 * `add_prefix_space`, which has the tokenizer built from tokenizer.model.
 * `where` prefixes file names in errors.
 *
 * @example
 * const tok = tokenizerFromFiles({ tokenizerModel: bytes });
 */
export function tokenizerFromFiles(files: TokenizerFiles, where = ''): Tokenizer {
  const name = (f: string): string => (where === '' ? f : `${where.replace(/\/+$/, '')}/${f}`);
  let config: Record<string, unknown> = {};
  if (files.tokenizerConfigJson !== undefined) {
    const file = name('tokenizer_config.json');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text(files.tokenizerConfigJson));
    } catch (cause) {
      throw new TokenizerError(`${file}: not valid JSON (${(cause as Error).message}); fix or delete it`, { file, cause });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new TokenizerError(`${file}: expected a JSON object of settings, got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}; fix or delete it`, { file });
    }
    config = parsed as Record<string, unknown>;
  }
  const fromModel = files.tokenizerModel !== undefined && (files.tokenizerJson === undefined || convertsFromModel(config));
  if (files.tokenizerJson !== undefined && !fromModel) return HfTokenizer.fromJson(text(files.tokenizerJson), config, name('tokenizer.json'));
  if (files.tokenizerModel !== undefined) return SentencePieceTokenizer.fromBytes(files.tokenizerModel, name('tokenizer.model'), config);
  throw new TokenizerError(`${where === '' ? 'tokenizer' : where}: neither tokenizer.json nor tokenizer.model was given; a LLaMA folder needs one of them`);
}
