/**
 * Builds a tokenizer from the contents of a model's tokenizer files:
 * `tokenizer.json` when given, else SentencePiece's `tokenizer.model`, each
 * with the settings of `tokenizer_config.json`.
 */
import { shown } from '../errors.js';
import { SentencePieceTokenizer } from './sentencepiece.js';
import { HfTokenizer, type Tokenizer, type TokenizerLoadOptions } from './tokenizer.js';
import { isLlamaTokenizerClass, isQwen2TokenizerClass, tokenName, tokenizerClassOfModelType, type SettingFiles } from './tokenizer-config.js';
import { TokenizerError } from './tokenizer-errors.js';

/** The tokenizer files of one model, as read from a folder or fetched. */
export interface TokenizerFiles {
  /** Contents of tokenizer.json. */
  tokenizerJson?: string | Uint8Array;
  /** Contents of tokenizer_config.json (optional, read with either file). */
  tokenizerConfigJson?: string | Uint8Array;
  /** Contents of tokenizer.model. */
  tokenizerModel?: Uint8Array;
  /**
   * Contents of special_tokens_map.json (optional): its tokens override tokenizer_config.json's, unless tokenizer_config.json
   * has `added_tokens_decoder` (transformers 4.34 and later write it, and then read neither this file nor added_tokens.json).
   */
  specialTokensMapJson?: string | Uint8Array;
  /** Contents of added_tokens.json (optional): older transformers' `{ "[PAD]": 32000 }` of added tokens. */
  addedTokensJson?: string | Uint8Array;
  /**
   * Contents of the model folder's config.json (optional): where tokenizer_config.json names no `tokenizer_class`, its
   * `tokenizer_class`, else the class of its `model_type`, is the tokenizer's (see {@link tokenizerFromFiles}).
   */
  modelConfigJson?: string | Uint8Array;
}

/** A tokenizer's files by name (see {@link tokenizerFileNames}), byte for byte as they were read. */
export type TokenizerFileBytes = ReadonlyMap<string, Uint8Array>;

/**
 * The files of a tokenizer folder that transformers' save_pretrained writes and from_pretrained reads: what an adapter
 * bringing its own vocabulary keeps of its tokenizer and writes back, byte for byte, where it is saved or merged.
 */
export const tokenizerFileNames: readonly string[] = Object.freeze([
  'tokenizer.json',
  'tokenizer.model',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.jinja',
]);

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

/** tokenizer_config.json completed from the older files, and the file each setting that they gave came from. */
interface CompletedConfig {
  config: Record<string, unknown>;
  files: SettingFiles;
}

/**
 * tokenizer_config.json as transformers' from_pretrained completes it from the older files when it has no
 * `added_tokens_decoder` (PreTrainedTokenizerBase._from_pretrained reads them only then): special_tokens_map.json's
 * tokens replace the config's, and each token of added_tokens.json becomes an entry of `added_tokens_decoder`,
 * special when it is one of the special tokens and then not normalized, else normalized.
 */
function withLegacyFiles(
  config: Record<string, unknown>,
  specialTokensMap: Record<string, unknown>,
  specialTokensMapFile: string,
  addedTokens: Record<string, unknown>,
  addedTokensFile: string,
): CompletedConfig {
  if ('added_tokens_decoder' in config) return { config, files: {} };
  const merged: Record<string, unknown> = { ...config, ...specialTokensMap };
  const files: Record<string, string> = Object.fromEntries(Object.keys(specialTokensMap).map((key) => [key, specialTokensMapFile]));
  const entries = Object.entries(addedTokens);
  if (entries.length === 0) return { config: merged, files };
  const specialNames = new Set<string>();
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']) {
    const token = tokenName(merged[key]);
    if (token !== undefined) specialNames.add(token);
  }
  if (Array.isArray(merged.additional_special_tokens)) {
    for (const entry of merged.additional_special_tokens) {
      const token = tokenName(entry);
      if (token !== undefined) specialNames.add(token);
    }
  }
  const decoder: Record<string, unknown> = {};
  for (const [content, id] of entries) {
    if (!Number.isInteger(id)) {
      throw new TokenizerError(`${addedTokensFile}: "${content}" maps to ${shown(id)}, expected an integer id; fix or delete it`, { file: addedTokensFile });
    }
    const special = specialNames.has(content);
    decoder[String(id)] = { content, special, normalized: !special, lstrip: false, rstrip: false, single_word: false };
  }
  merged.added_tokens_decoder = decoder;
  files.added_tokens_decoder = addedTokensFile;
  return { config: merged, files };
}

/**
 * `config` (tokenizer_config.json) with the tokenizer class that AutoTokenizer takes from config.json (`modelConfig`,
 * `file` naming it) where `config` names none (no `tokenizer_class`, or null): config.json's own `tokenizer_class`, else
 * that of its `model_type` (see tokenizerClassOfModelType). config.json is read only then, as transformers reads it; a
 * model_type of another tokenizer class, or none, leaves the class unnamed (transformers refuses a folder without one).
 */
function withModelClass(config: Record<string, unknown>, modelConfig: string | Uint8Array | undefined, file: string): { config: Record<string, unknown>; classFile?: string; classSource?: string } {
  if ((config.tokenizer_class !== undefined && config.tokenizer_class !== null) || modelConfig === undefined) return { config };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text(modelConfig));
  } catch (cause) {
    throw new TokenizerError(`${file}: not valid JSON (${(cause as Error).message}), read for the tokenizer class that tokenizer_config.json does not name; fix it, or name tokenizer_class in tokenizer_config.json`, { file, cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TokenizerError(`${file}: expected a JSON object, got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}, read for the tokenizer class that tokenizer_config.json does not name; fix it, or name tokenizer_class in tokenizer_config.json`, { file });
  }
  const model = parsed as Record<string, unknown>;
  const cls = typeof model.tokenizer_class === 'string' ? model.tokenizer_class : tokenizerClassOfModelType(model.model_type);
  if (cls === undefined) return { config };
  const source = typeof model.tokenizer_class === 'string' ? file : `${file}, whose model_type is ${JSON.stringify(model.model_type)},`;
  return { config: { ...config, tokenizer_class: cls }, classFile: file, classSource: source };
}

/**
 * Builds a tokenizer from file contents as transformers' AutoTokenizer does: tokenizer.json is
 * preferred over tokenizer.model, except for a LLaMA tokenizer_config.json that sets
 * `add_prefix_space`, which has the tokenizer built from tokenizer.model; special_tokens_map.json and
 * added_tokens.json are read as transformers reads them. Where tokenizer_config.json names no `tokenizer_class`, the
 * class is config.json's (`files.modelConfigJson`): its `tokenizer_class`, else that of its `model_type` (llama and
 * mistral take LlamaTokenizerFast, qwen2 and qwen3 Qwen2TokenizerFast), whose default special tokens then apply.
 * `where` prefixes file names in errors; `options.trustTokenizerPatterns` runs tokenizer.json's regular expressions
 * as written (see {@link TokenizerLoadOptions}).
 *
 * @example
 * const tok = tokenizerFromFiles({ tokenizerModel: bytes });
 */
export function tokenizerFromFiles(files: TokenizerFiles, where = '', options: TokenizerLoadOptions = {}): Tokenizer {
  const name = (f: string): string => (where === '' ? f : `${where.replace(/\/+$/, '')}/${f}`);
  const object = (contents: string | Uint8Array | undefined, file: string): Record<string, unknown> => {
    if (contents === undefined) return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(text(contents));
    } catch (cause) {
      throw new TokenizerError(`${file}: not valid JSON (${(cause as Error).message}); fix or delete it`, { file, cause });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new TokenizerError(`${file}: expected a JSON object, got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}; fix or delete it`, { file });
    }
    return parsed as Record<string, unknown>;
  };
  const { config, classFile, classSource } = withModelClass(object(files.tokenizerConfigJson, name('tokenizer_config.json')), files.modelConfigJson, name('config.json'));
  // transformers opens the older files only when tokenizer_config.json has no added_tokens_decoder.
  const legacy = !('added_tokens_decoder' in config);
  const specialTokensMap = legacy ? object(files.specialTokensMapJson, name('special_tokens_map.json')) : {};
  const fromModel = files.tokenizerModel !== undefined && (files.tokenizerJson === undefined || convertsFromModel(config));
  const addedTokens = legacy ? object(files.addedTokensJson, name('added_tokens.json')) : {};
  if (files.tokenizerJson !== undefined && !fromModel) {
    const completed = withLegacyFiles(config, specialTokensMap, name('special_tokens_map.json'), addedTokens, name('added_tokens.json'));
    return HfTokenizer.fromJson(text(files.tokenizerJson), completed.config, name('tokenizer.json'), options, completed.files);
  }
  if (files.tokenizerModel !== undefined) {
    if (isQwen2TokenizerClass(config.tokenizer_class)) {
      throw new TokenizerError(
        `${name('tokenizer.model')}: ${classSource ?? name('tokenizer_config.json')} names the tokenizer class ${String(config.tokenizer_class)}, which transformers builds from tokenizer.json, not from tokenizer.model; copy the model's tokenizer.json into ${where === '' ? 'the folder' : where}`,
        { file: classFile ?? name('tokenizer_config.json') },
      );
    }
    const completed = withLegacyFiles(config, specialTokensMap, name('special_tokens_map.json'), addedTokens, name('added_tokens.json'));
    return SentencePieceTokenizer.fromBytes(files.tokenizerModel, name('tokenizer.model'), completed.config, completed.files);
  }
  throw new TokenizerError(`${where === '' ? 'tokenizer' : where}: neither tokenizer.json nor tokenizer.model was given; a LLaMA folder needs one of them`);
}

/**
 * Reads the tokenizer files of a model folder through `read` (a file by name: from disk, or among files picked in a
 * browser; undefined where the folder has none) as transformers' AutoTokenizer reads them: tokenizer.json,
 * tokenizer.model, tokenizer_config.json, special_tokens_map.json, added_tokens.json and config.json (for the tokenizer
 * class where tokenizer_config.json names none).
 * Null where the folder has neither tokenizer.json nor tokenizer.model; {@link tokenizerFromFiles} builds the tokenizer.
 *
 * @example
 * const files = await readTokenizerFiles(async (name) => byName.get(name)?.bytes());
 */
export async function readTokenizerFiles(read: (file: string) => Promise<Uint8Array | undefined>): Promise<TokenizerFiles | null> {
  const files: TokenizerFiles = {};
  const tokenizerJson = await read('tokenizer.json');
  const tokenizerModel = await read('tokenizer.model');
  if (tokenizerJson === undefined && tokenizerModel === undefined) return null;
  const tokenizerConfigJson = await read('tokenizer_config.json');
  const specialTokensMapJson = await read('special_tokens_map.json');
  if (tokenizerJson !== undefined) files.tokenizerJson = tokenizerJson;
  if (tokenizerModel !== undefined) files.tokenizerModel = tokenizerModel;
  if (tokenizerConfigJson !== undefined) files.tokenizerConfigJson = tokenizerConfigJson;
  if (specialTokensMapJson !== undefined) files.specialTokensMapJson = specialTokensMapJson;
  const addedTokensJson = await read('added_tokens.json');
  if (addedTokensJson !== undefined) files.addedTokensJson = addedTokensJson;
  const modelConfigJson = await read('config.json');
  if (modelConfigJson !== undefined) files.modelConfigJson = modelConfigJson;
  return files;
}
