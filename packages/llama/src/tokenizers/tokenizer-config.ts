/**
 * The settings of a model's tokenizer_config.json that change how transformers' LlamaTokenizerFast
 * encodes and decodes with a SentencePiece `tokenizer.model` (convert_slow_tokenizer.py's LlamaConverter).
 */
import { shown } from '../errors.js';
import { TokenizerError } from './tokenizer-errors.js';

/** A token of tokenizer_config.json's `added_tokens_decoder`, matched whole in text. */
export interface AddedTokenSetting {
  /** Its text. */
  content: string;
  /** Its id (the key in `added_tokens_decoder`). */
  id: number;
  /** Left out by `skipSpecialTokens`. */
  special: boolean;
  /** Matched in the normalized text (with its content normalized the same way) instead of the raw text. */
  normalized: boolean;
  /** The match takes the whitespace on its left / right with it. */
  lstrip: boolean;
  rstrip: boolean;
  /** Found only where no word character is right before or after it. */
  singleWord: boolean;
}

/** tokenizer_config.json settings for a `tokenizer.model`, with transformers' defaults filled in. */
export interface LlamaTokenizerSettings {
  /**
   * `legacy` (default true). True: every piece of text between special tokens gets SentencePiece's
   * '▁' prefix, also right after `<s>`. False: only the start of the whole text does.
   */
  legacy: boolean;
  /**
   * `add_prefix_space` (default true): false puts no '▁' in front at all and keeps the first space when decoding. null
   * (what LlamaTokenizerFast.save_pretrained writes) is false: LlamaConverter tests the slow tokenizer's None for truth.
   */
  addPrefixSpace: boolean | undefined;
  /** `add_bos_token` (default true): `encode` puts BOS first unless told otherwise. */
  addBosToken: boolean;
  /** `add_eos_token` (default false): `encode` puts EOS last unless told otherwise. */
  addEosToken: boolean;
  /** `clean_up_tokenization_spaces` (default false for LLaMA): decode turns " ." into "." and the like. */
  cleanUpTokenizationSpaces: boolean;
  /**
   * Text of the tokens that tokenizer_config.json names as special, each once, in the order of transformers'
   * all_special_tokens: `bos_token`, `eos_token`, `unk_token`, `sep_token`, `pad_token`, `cls_token`, `mask_token`,
   * `additional_special_tokens`, then the values of `extra_special_tokens`.
   */
  specialTokens: string[];
  /** The tokens of `added_tokens_decoder`, in id order. */
  addedTokens: AddedTokenSetting[];
  /** `bos_token`, `eos_token` and `pad_token` when given. */
  bosToken: string | undefined;
  eosToken: string | undefined;
  padToken: string | undefined;
}

/**
 * The file that each setting of a tokenizer_config.json completed from older files came from, where it is not
 * tokenizer_config.json: special_tokens_map.json for the tokens it replaced, added_tokens.json for
 * `added_tokens_decoder` built from it. Errors about a setting name its file.
 */
export type SettingFiles = Readonly<Record<string, string>>;

/** A token given in tokenizer_config.json as a string or as `{ content }`. */
export function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** True for tokenizer_config.json's `tokenizer_class` of a LLaMA tokenizer, or none (decapoda's conversion wrote "LLaMATokenizer"). */
export function isLlamaTokenizerClass(cls: unknown): boolean {
  return cls === undefined || cls === null || (typeof cls === 'string' && /^llamatokenizer/i.test(cls));
}

const LLAMA_MODEL_TYPES = [
  'arcee', 'aria', 'chameleon', 'colpali', 'deepseek_v2', 'deepseek_v3', 'deepseek_vl', 'deepseek_vl_hybrid', 'diffllama', 'ernie4_5',
  'ernie4_5_moe', 'idefics', 'idefics2', 'idefics3', 'jamba', 'janus', 'jetmoe', 'llama', 'llama4', 'llama4_text', 'llava', 'llava_next',
  'llava_next_video', 'llava_onevision', 'ministral', 'mistral', 'mistral3', 'mixtral', 'mllama', 'paligemma', 'persimmon', 'phi3',
  'phimoe', 'video_llava', 'vipllava', 'zamba', 'zamba2',
];
const QWEN2_MODEL_TYPES = [
  'colqwen2', 'internvl', 'qwen2', 'qwen2_5_omni', 'qwen2_5_vl', 'qwen2_audio', 'qwen2_moe', 'qwen2_vl', 'qwen3', 'qwen3_moe', 'qwen3_next',
  'qwen3_omni_moe', 'qwen3_vl', 'qwen3_vl_moe',
];

/**
 * The tokenizer class that transformers 4.57's AutoTokenizer takes for config.json's `model_type` (its
 * TOKENIZER_MAPPING) where tokenizer_config.json names none: LlamaTokenizerFast or Qwen2TokenizerFast, the classes
 * whose defaults {@link withClassDefaults} knows; undefined for another model type.
 */
export function tokenizerClassOfModelType(modelType: unknown): string | undefined {
  if (typeof modelType !== 'string') return undefined;
  if (LLAMA_MODEL_TYPES.includes(modelType)) return 'LlamaTokenizerFast';
  if (QWEN2_MODEL_TYPES.includes(modelType)) return 'Qwen2TokenizerFast';
  return undefined;
}

/** True for tokenizer_config.json's `tokenizer_class` of Qwen2's tokenizer. */
export function isQwen2TokenizerClass(cls: unknown): boolean {
  return typeof cls === 'string' && /^Qwen2Tokenizer(Fast)?$/.test(cls);
}

/** The special tokens that the __init__ of transformers' LlamaTokenizerFast and Qwen2TokenizerFast give where the files name none. */
const LLAMA_DEFAULTS = { unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>' };
const QWEN2_DEFAULTS = { unk_token: '<|endoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' };

/**
 * `config` (tokenizer_config.json completed from special_tokens_map.json) with the special tokens that the tokenizer
 * class of its `tokenizer_class` takes by default where it has no such key: LlamaTokenizer's unk_token "<unk>",
 * bos_token "<s>" and eos_token "</s>" (also for "LLaMATokenizer", a name transformers has no class for, and where the
 * folder names no class but has only tokenizer.model, `sentencePiece`); Qwen2Tokenizer's unk_token, eos_token and
 * pad_token "<|endoftext|>"; none for another class, or for a tokenizer.json without a class (tokenizerFromFiles gives it the
 * class of config.json, as transformers does, where it is given). A token set to null or "" is kept: null is no token, "" has
 * unk_token's id (see {@link specialTokenId}). A default the vocabulary lacks is added, as a token named is.
 */
export function withClassDefaults(config: Record<string, unknown>, sentencePiece: boolean): Record<string, unknown> {
  const cls = config.tokenizer_class;
  const llama = typeof cls === 'string' ? /^llamatokenizer(fast)?$/i.test(cls) : sentencePiece && isLlamaTokenizerClass(cls);
  const defaults: Record<string, string> = llama ? LLAMA_DEFAULTS : isQwen2TokenizerClass(cls) ? QWEN2_DEFAULTS : {};
  const out = { ...config };
  for (const [key, token] of Object.entries(defaults)) if (!(key in out)) out[key] = token;
  return out;
}

/**
 * The id that transformers gives the special token `key` of `config` (see {@link withClassDefaults}), through
 * `idOf` (a token's id in the vocabulary, the tokens named already added): null for null (no such token), or where
 * the key is absent; "" has unk_token's id (convert_tokens_to_ids falls back to it). undefined for "" where unk_token
 * is "" or null: transformers then has no id, or loads no tokenizer where it needs one (a bos_token put first).
 */
export function specialTokenId(config: Record<string, unknown>, key: string, idOf: (content: string) => number | undefined): number | null | undefined {
  const value = config[key];
  if (value === undefined || value === null) return null;
  const content = tokenName(value);
  if (content === undefined) return null;
  if (content !== '') return idOf(content);
  const unk = tokenName(config.unk_token);
  return unk === undefined || unk === '' ? undefined : idOf(unk);
}

/**
 * Reads the settings above from a parsed tokenizer_config.json (`{}` when the folder has none);
 * `file` names it in errors. A setting of the wrong type is an error, `null` is absent (but for add_prefix_space), and
 * so is an empty token name (as in decapoda-research's LLaMA conversion).
 */
export function llamaTokenizerSettings(config: Record<string, unknown>, file = 'tokenizer_config.json'): LlamaTokenizerSettings {
  const name = (value: unknown): string | undefined => {
    const text = tokenName(value);
    return text === '' ? undefined : text;
  };
  const flag = (key: string): boolean | undefined => {
    const value = config[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') {
      throw new TokenizerError(`${file}: "${key}" is ${shown(value)}, expected true, false or null; fix it in ${file}`, { file });
    }
    return value;
  };
  const specialValues: unknown[] = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'].map((key) => config[key]);
  if (Array.isArray(config.additional_special_tokens)) specialValues.push(...(config.additional_special_tokens as unknown[]));
  const extra = config.extra_special_tokens;
  if (typeof extra === 'object' && extra !== null && !Array.isArray(extra)) specialValues.push(...Object.values(extra));
  const specialTokens: string[] = [];
  for (const value of specialValues) {
    const token = name(value);
    if (token !== undefined && !specialTokens.includes(token)) specialTokens.push(token);
  }
  const addedTokens: AddedTokenSetting[] = [];
  const decoder = config.added_tokens_decoder;
  if (typeof decoder === 'object' && decoder !== null) {
    for (const [key, entry] of Object.entries(decoder as Record<string, unknown>)) {
      const content = name(entry);
      const id = Number(key);
      if (content === undefined || !Number.isInteger(id) || id < 0) {
        throw new TokenizerError(`${file}: added_tokens_decoder["${key}"] is ${shown(entry)}, expected an integer id mapped to { "content": ... }; fix it in ${file}`, { file });
      }
      const flags = entry as Record<string, unknown>;
      addedTokens.push({
        content,
        id,
        special: flags.special === true,
        // transformers' AddedToken default: normalized unless special.
        normalized: typeof flags.normalized === 'boolean' ? flags.normalized : flags.special !== true,
        lstrip: flags.lstrip === true,
        rstrip: flags.rstrip === true,
        singleWord: flags.single_word === true,
      });
    }
    addedTokens.sort((a, b) => a.id - b.id);
  }
  return {
    legacy: flag('legacy') ?? true,
    addPrefixSpace: config.add_prefix_space === null ? false : flag('add_prefix_space'),
    addBosToken: flag('add_bos_token') ?? true,
    addEosToken: flag('add_eos_token') ?? false,
    cleanUpTokenizationSpaces: flag('clean_up_tokenization_spaces') ?? false,
    specialTokens,
    addedTokens,
    bosToken: name(config.bos_token),
    eosToken: name(config.eos_token),
    padToken: name(config.pad_token),
  };
}

const CLEAN_UPS: readonly (readonly [string, string])[] = [
  [' .', '.'], [' ?', '?'], [' !', '!'], [' ,', ','], [" ' ", "'"],
  [" n't", "n't"], [" 'm", "'m"], [" 's", "'s"], [" 've", "'ve"], [" 're", "'re"],
];

/** transformers' `clean_up_tokenization`: its ten replacements, each over the whole text, in its order. */
export function cleanUpTokenization(text: string): string {
  let out = text;
  for (const [from, to] of CLEAN_UPS) out = out.replaceAll(from, to);
  return out;
}
