/**
 * The `Tokenizer` contract used by the rest of the package, the streaming
 * decoder shared by both implementations, and `HfTokenizer`, which wraps a
 * Hugging Face `tokenizer.json` through `@huggingface/tokenizers`.
 */
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { shown } from '../errors.js';
import { cleanUpTokenization, isLlamaTokenizerClass, specialTokenId, tokenName, withClassDefaults, type SettingFiles } from './tokenizer-config.js';
import { TokenizerError } from './tokenizer-errors.js';
import { specialTokensAround, type SpecialTokensAround } from './post-processor.js';
import { checkTokenizerPatterns } from './tokenizer-patterns.js';
import { TokenMatcher, type WholeToken } from './added-tokens.js';
import { transformersAddedTokens, type MatchedToken } from './added-vocabulary.js';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Put the beginning-of-sequence token (`<s>`, id 1 for LLaMA) first. Default: a LLaMA
   * tokenizer_config.json's `add_bos_token`, else whether tokenizer.json's `post_processor` puts it
   * first (Llama 3's does, Qwen2's does not). True on a tokenizer without BOS is an error.
   */
  addBos?: boolean;
  /** Put the end-of-sequence token (`</s>`, id 2 for LLaMA) last. Default: a LLaMA tokenizer_config.json's `add_eos_token`, else whether the `post_processor` puts it last. */
  addEos?: boolean;
}

/** Options of loading a tokenizer: {@link HfTokenizer.fromJson}, tokenizerFromFiles and loadTokenizer. */
export interface TokenizerLoadOptions {
  /**
   * Run the regular expressions of tokenizer.json as written (`--trust-tokenizer-patterns`), also those not known to
   * match in time linear in the text, which are otherwise refused at load: for the original tokenizer of a model from
   * a source you trust, such as DeepSeek LLM's, whose pre-tokenizer splits on `\s+$`. As transformers' trust_remote_code
   * trusts a folder's code, this trusts its patterns: a text crafted against one (in a prompt to serve, or in training
   * data) can make it backtrack for hours, hanging whoever tokenizes it. Default false.
   */
  trustTokenizerPatterns?: boolean;
}

/** Options of {@link Tokenizer.decode} and {@link Tokenizer.createStreamDecoder}. */
export interface DecodeOptions {
  /** Leave out special tokens (`<unk>`, `<s>`, `</s>`) instead of writing their text. Default false, as in Hugging Face's `decode`. */
  skipSpecialTokens?: boolean;
}

/** Turns token ids into text one id at a time. */
export interface StreamDecoder {
  /**
   * Adds one token id and returns the text it completes: bytes of a UTF-8
   * character that is still incomplete are held back until the rest arrive.
   */
  push(id: number): string;
  /** Returns whatever is held back (an incomplete character becomes U+FFFD) and resets the decoder. */
  flush(): string;
}

/**
 * A LLaMA-style tokenizer: text to token ids and back.
 *
 * @example
 * const tok = await loadTokenizer('./llama-7b');
 * tok.encode('the'); // [1, 278]
 * tok.decode([1, 278], { skipSpecialTokens: true }); // 'the'
 */
export interface Tokenizer {
  /**
   * Token ids of `text` as transformers' tokenizer of the folder gives them: special and added
   * tokens written in the text become their ids; BOS and EOS as {@link EncodeOptions} say.
   */
  encode(text: string, options?: EncodeOptions): number[];
  /**
   * Text of `ids`; the leading space that encoding adds is removed, and spaces are cleaned up when
   * tokenizer_config.json's `clean_up_tokenization_spaces` is true, as transformers' decode does.
   */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** A decoder that streams text id by id; the concatenation of its outputs equals `decode` of all ids. */
  createStreamDecoder(options?: DecodeOptions): StreamDecoder;
  /** The piece (vocabulary string) of `id`, e.g. `'▁the'` or `'<0x0A>'`. */
  idToPiece(id: number): string;
  /** The id of `piece`, or undefined when it is not in the vocabulary. */
  pieceToId(piece: string): number | undefined;
  /**
   * Beginning-of-sequence id. A tokenizer without BOS (tokenizer_config.json's `bos_token` null, as
   * Qwen2's) throws a `TokenizerError` here; {@link Tokenizer.hasBos} tells beforehand.
   */
  readonly bosId: number;
  /** False for a tokenizer without BOS token (tokenizer_config.json's `bos_token` null, as Qwen2's). */
  readonly hasBos: boolean;
  /**
   * End-of-sequence id, put last by `addEos`. Where transformers has none (tokenizer_config.json's `eos_token` null, or
   * no `eos_token` and no default of its class), the model's own: `"</s>"` of tokenizer.json (a tokenizer.json without
   * one is refused), or tokenizer.model's EOS piece. Generation stops on generation_config.json's `eos_token_id`
   * (else config.json's), as transformers' generate does, not on this id.
   */
  readonly eosId: number;
  /** Padding id: LLaMA has none, so HuaTuo and alpaca-lora pad with `<unk>` (0). */
  readonly padId: number;
  /** Number of ids. */
  readonly vocabSize: number;
}

/** How one id decodes: a special token, or plain bytes. */
export interface PieceBytes {
  special: boolean;
  /** UTF-8 bytes of the piece's text ('▁' read as a space; `<0xXX>` as that byte; a special token as its own text). */
  bytes: Uint8Array;
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextEncoder();

/** Bytes a SentencePiece-style piece stands for: `<0xXX>` is one byte, '▁' is a space. */
export function pieceToBytes(piece: string): Uint8Array {
  const byte = BYTE_PIECE.exec(piece);
  if (byte !== null) return Uint8Array.of(parseInt(byte[1] as string, 16));
  return utf8.encode(piece.replaceAll('\u2581', ' '));
}

/** {@link DecodeOptions} and whether a space that begins the output is dropped (default true). */
export interface ByteDecodeOptions extends DecodeOptions {
  /** Drop one space when it is the very first byte of the output, the prefix that encoding adds. Default true. */
  stripLeadingSpace?: boolean;
}

/**
 * The streaming decoder of SentencePiece-style vocabularies: bytes of each
 * piece go through one streaming UTF-8 decoder, and one space is dropped when
 * it is the very first byte of the output (the dummy prefix of encoding) unless
 * `stripLeadingSpace` is false.
 */
export function createByteStreamDecoder(
  lookup: (id: number) => PieceBytes,
  options: ByteDecodeOptions = {},
): StreamDecoder {
  const skip = options.skipSpecialTokens ?? false;
  const strip = options.stripLeadingSpace ?? true;
  let decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let atStart = strip;
  return {
    push(id: number): string {
      const piece = lookup(id);
      if (piece.special && skip) return '';
      let bytes = piece.bytes;
      if (bytes.length === 0) return '';
      if (atStart) {
        atStart = false;
        if (bytes[0] === 0x20) bytes = bytes.subarray(1);
      }
      return decoder.decode(bytes, { stream: true });
    },
    flush(): string {
      const rest = decoder.decode();
      decoder = new TextDecoder('utf-8', { ignoreBOM: true });
      atStart = strip;
      return rest;
    },
  };
}

/**
 * Characters of cleaned-up text held back while streaming: appending text changes at most the
 * last few characters of transformers' clean-up (each replacement is at most 4 characters long
 * and drops one space, and the ten run once each), so all before these are final.
 */
const CLEAN_UP_HOLD = 48;

/**
 * Wraps a stream decoder so that its text comes out as transformers' `clean_up_tokenization`
 * makes of the whole text: the raw text so far is cleaned up again at each id and what became
 * final is emitted.
 */
export function cleanUpStream(inner: StreamDecoder): StreamDecoder {
  let raw = '';
  let emitted = 0;
  const take = (final: boolean): string => {
    const cleaned = cleanUpTokenization(raw);
    const end = final ? cleaned.length : Math.max(emitted, cleaned.length - CLEAN_UP_HOLD);
    const fresh = cleaned.slice(emitted, end);
    emitted = end;
    return fresh;
  };
  return {
    push(id: number): string {
      raw += inner.push(id);
      return take(false);
    },
    flush(): string {
      raw += inner.flush();
      const rest = take(true);
      raw = '';
      emitted = 0;
      return rest;
    },
  };
}

/** Decodes all of `ids` through {@link createByteStreamDecoder}. */
export function decodeBytes(lookup: (id: number) => PieceBytes, ids: readonly number[], options: ByteDecodeOptions = {}): string {
  const stream = createByteStreamDecoder(lookup, options);
  let text = '';
  for (const id of ids) text += stream.push(id);
  return text + stream.flush();
}

/** The tokenizer_config.json beside `file`, a tokenizer.json. */
function configFileOf(file: string): string {
  return /tokenizer\.json$/.test(file) ? file.replace(/tokenizer\.json$/, 'tokenizer_config.json') : 'tokenizer_config.json';
}

interface HfAddedToken {
  id: number;
  content: string;
  special?: boolean;
  normalized?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
}

/**
 * The added tokens of a tokenizer.json with a normalizer, split in the two sets that the tokenizers library's
 * AddedVocabulary matches: those with normalized false in the raw text, the others in each normalized piece of it,
 * their content normalized by the same normalizer (under LLaMA's legacy normalizer '<x>' is looked for as '▁<x>').
 */
interface AddedVocabulary {
  raw: TokenMatcher;
  normalized: TokenMatcher;
}

/**
 * The added vocabulary that {@link HfTokenizer} matches itself, from the tokens looked for in text (`matched`, see
 * transformersAddedTokens) and the flags of each added token (`added`): where one has single_word true
 * (@huggingface/tokenizers ignores the flag), where there is a normalizer and a token with normalized true (AddedToken's
 * default for a token that is not special), or where a token is looked for otherwise than its flags say (a content
 * given twice with other flags). Otherwise the library's matching agrees with the tokenizers library's.
 * tokenizer_config.json's remove_space / do_lowercase_and_remove_accent, which @huggingface/tokenizers applies before
 * its normalizer, keep its own matching, and are refused beside a single_word token or one looked for otherwise.
 */
function addedVocabulary(hf: HfLibTokenizer, matched: readonly MatchedToken[], added: readonly HfAddedToken[], config: Record<string, unknown>, configFile: string): AddedVocabulary | undefined {
  const normalizer = hf.normalizer;
  const flags = new Map(added.map((t) => [t.id, t]));
  const otherwise = matched.find((t) => flags.get(t.id)?.normalized !== t.normalized);
  const own = otherwise ?? matched.find((t) => t.singleWord);
  if (own === undefined && (normalizer === null || !matched.some((t) => t.normalized))) return undefined;
  for (const key of ['remove_space', 'do_lowercase_and_remove_accent']) {
    if (config[key] !== true) continue;
    if (own === undefined) return undefined;
    const why = otherwise === undefined ? 'has single_word true' : `is given with normalized ${!otherwise.normalized} and ${otherwise.normalized} by the tokenizer files`;
    throw new TokenizerError(
      `${configFile}: ${key} is true and the added token "${own.content}" ${why}, which are not supported together; remove ${key}${otherwise === undefined ? ' or set single_word to false' : ' or give the token once'}`,
      { file: configFile },
    );
  }
  const normalize = (text: string): string => (normalizer === null ? text : normalizer.normalize(text));
  const whole = (t: MatchedToken, content: string): WholeToken => ({ content, id: t.id, lstrip: t.lstrip, rstrip: t.rstrip, singleWord: t.singleWord });
  return {
    raw: new TokenMatcher(matched.filter((t) => !t.normalized).map((t) => whole(t, t.content))),
    normalized: new TokenMatcher(matched.filter((t) => t.normalized).map((t) => whole(t, normalize(t.content)))),
  };
}

/**
 * A tokenizer read from a Hugging Face `tokenizer.json` (and optionally its
 * `tokenizer_config.json`), run by `@huggingface/tokenizers`.
 *
 * Encoding asks the library for the ids without special tokens and adds the special tokens
 * itself, as transformers' fast tokenizer does with `add_special_tokens=True`: those of
 * tokenizer.json's `post_processor` (see {@link specialTokensAround}), or for a LLaMA
 * tokenizer_config.json BOS and EOS as its `add_bos_token` / `add_eos_token` say (the template
 * LlamaTokenizerFast.update_post_processor builds). `addBos`/`addEos` put or leave out BOS first
 * and EOS last. A `bos_token` of null (Qwen2), or none with no `<s>` in the vocabulary, is a
 * tokenizer without BOS. Decoding cleans up spaces as transformers does when
 * `clean_up_tokenization_spaces` is true.
 *
 * @example
 * const tok = HfTokenizer.fromJson(JSON.parse(text), { clean_up_tokenization_spaces: false });
 * tok.encode('the'); // [1, 278] with LLaMA's vocabulary
 */
export class HfTokenizer implements Tokenizer {
  readonly eosId: number;
  readonly padId: number;
  readonly vocabSize: number;
  private readonly hf: HfLibTokenizer;
  private readonly specialIds: Set<number>;
  private readonly pieces: PieceBytes[] = [];
  private readonly byteDecoding: boolean;
  private readonly stripLeadingSpace: boolean;
  private readonly bos: number | undefined;
  private readonly specialTokens: SpecialTokensAround;
  private readonly cleanUp: boolean;
  private readonly file: string;
  private readonly configFile: string;
  /** Why there is no BOS, for errors: what tokenizer_config.json says. */
  private readonly noBosReason: string;
  /** Set where the library's own matching of added tokens differs from the tokenizers library's. */
  private readonly addedVocabulary: AddedVocabulary | undefined;

  private constructor(hf: HfLibTokenizer, json: Record<string, unknown>, matched: readonly MatchedToken[], config: Record<string, unknown>, file: string, settingFiles: SettingFiles) {
    this.hf = hf;
    this.file = file;
    this.configFile = configFileOf(file);
    const fileOf = (key: string): string => settingFiles[key] ?? this.configFile;
    const added = Array.isArray(json.added_tokens) ? (json.added_tokens as HfAddedToken[]) : [];
    this.specialIds = new Set(added.filter((t) => t.special === true).map((t) => t.id));
    this.vocabSize = hf.get_vocab(true).size;
    const idOf = (content: string): number => {
      const id = hf.token_to_id(content);
      if (id === undefined) throw new TokenizerError(`internal: the special token "${content}" named in ${this.configFile} was not added to ${file}`);
      return id;
    };
    // Where tokenizer_config.json gives no token (no such key and no default of its class, or "" without an unk_token),
    // LLaMA's "<s>" and "</s>" are taken: a tokenizer here always has an EOS.
    const unnamedReason = (key: string): string => {
      const value = config[key];
      return value === undefined ? `${this.configFile} names no ${key}` : `${fileOf(key)} has ${key} ${JSON.stringify(value === null ? null : tokenName(value))}`;
    };
    const bos = config.bos_token === null ? null : specialTokenId(config, 'bos_token', idOf) ?? hf.token_to_id('<s>') ?? null;
    this.bos = bos ?? undefined;
    this.noBosReason = config.bos_token === null ? `${fileOf('bos_token')} has bos_token null` : `${unnamedReason('bos_token')} and the vocabulary has no "<s>"`;
    const eos = specialTokenId(config, 'eos_token', idOf) ?? hf.token_to_id('</s>');
    if (eos === undefined) {
      throw new TokenizerError(
        `${file}: has no "</s>" to end sequences with where ${unnamedReason('eos_token')}; name the model's token in eos_token of ${fileOf('eos_token')}`,
        { file: fileOf('eos_token') },
      );
    }
    this.eosId = eos;
    this.padId = specialTokenId(config, 'pad_token', idOf) ?? hf.token_to_id(tokenName(config.unk_token) ?? '<unk>') ?? 0;
    // Byte-level streaming holds for SentencePiece-style vocabularies ('▁' and <0xXX> pieces);
    // other decoders (e.g. GPT-2's ByteLevel) stream by decoding the whole prefix.
    const decoder = JSON.stringify(json.decoder ?? null);
    this.byteDecoding = !decoder.includes('"ByteLevel"');
    // The decoder drops the prefix space with a Strip step, or a Metaspace decoder that prepends.
    this.stripLeadingSpace =
      decoder.includes('"type":"Strip"') || (decoder.includes('"type":"Metaspace"') && !/"prepend_scheme":"never"|"add_prefix_space":false/.test(decoder));
    // A config without tokenizer_class is read as LLaMA's only when the tokenizer has a BOS.
    const llama = isLlamaTokenizerClass(config.tokenizer_class) && (typeof config.tokenizer_class === 'string' || this.bos !== undefined);
    if (llama) {
      const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : true;
      const addEos = config.add_eos_token === true;
      if (addBos && this.bos === undefined) {
        const bosFile = fileOf('bos_token');
        throw new TokenizerError(
          `${this.configFile}: add_bos_token is ${config.add_bos_token === true ? 'true' : 'unset (true for LlamaTokenizer)'} but ${bosFile === this.configFile ? 'bos_token is null' : `${bosFile} has bos_token null`}; set add_bos_token to false or name the BOS token in bos_token${bosFile === this.configFile ? '' : ` of ${bosFile}`}`,
          { file: this.configFile },
        );
      }
      if (addEos && config.eos_token === null) {
        const eosFile = fileOf('eos_token');
        throw new TokenizerError(
          `${this.configFile}: add_eos_token is true but ${eosFile === this.configFile ? 'eos_token is null' : `${eosFile} has eos_token null`}; set add_eos_token to false or name the EOS token in eos_token${eosFile === this.configFile ? '' : ` of ${eosFile}`}`,
          { file: this.configFile },
        );
      }
      this.specialTokens = { prefix: addBos ? [this.bos as number] : [], suffix: addEos ? [this.eosId] : [] };
    } else {
      this.specialTokens = specialTokensAround(json.post_processor, file);
    }
    this.cleanUp = config.clean_up_tokenization_spaces === true;
    this.addedVocabulary = addedVocabulary(hf, matched, added, config, this.configFile);
  }

  /**
   * Builds a tokenizer from the parsed (or raw) contents of `tokenizer.json`
   * and, optionally, `tokenizer_config.json`. `file` names the source in errors; `settingFiles` names the file of a
   * setting of `config` that came from another file than tokenizer_config.json (special_tokens_map.json, or
   * added_tokens.json for an `added_tokens_decoder` built from it). The added tokens are those transformers' fast
   * tokenizer ends up with (see transformersAddedTokens): a special token named that the vocabulary lacks, or a token
   * only in `added_tokens_decoder`, is added at the next free id.
   * A regular expression of its normalizer, pre_tokenizer or decoder that could backtrack for a time
   * exponential or polynomial in the text is refused, naming the field and the pattern (see checkTokenizerPatterns),
   * unless `options.trustTokenizerPatterns`.
   */
  static fromJson(json: unknown, config: unknown = {}, file = 'tokenizer.json', options: TokenizerLoadOptions = {}, settingFiles: SettingFiles = {}): HfTokenizer {
    let parsed = json;
    if (typeof json === 'string') {
      try {
        parsed = JSON.parse(json);
      } catch (cause) {
        throw new TokenizerError(`${file}: not valid JSON (${(cause as Error).message}); replace it with the model's original tokenizer.json`, { file, cause });
      }
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new TokenizerError(`${file}: expected a JSON object with a "model" field, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}; replace it with the model's original tokenizer.json`, { file });
    }
    const obj = parsed as Record<string, unknown>;
    const model = obj.model as Record<string, unknown> | undefined;
    if (typeof model !== 'object' || model === null || typeof model.vocab !== 'object' || model.vocab === null) {
      throw new TokenizerError(`${file}: expected "model" with a "vocab", got ${model === undefined ? 'no "model"' : shown(model)}; replace it with the model's original tokenizer.json`, { file });
    }
    const cfg = withClassDefaults(typeof config === 'object' && config !== null ? (config as Record<string, unknown>) : {}, false);
    // transformers reads tokenizer.json's added tokens as added_tokens_decoder where tokenizer_config.json has none.
    const legacy = !('added_tokens_decoder' in cfg) || settingFiles.added_tokens_decoder !== undefined;
    const added = transformersAddedTokens(obj, cfg, legacy, settingFiles.added_tokens_decoder ?? configFileOf(file));
    const addedTokens = added.decoder.map((t) => ({ id: t.id, content: t.content, single_word: t.singleWord, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special }));
    // The clean-up is transformers' own (cleanUpTokenization), so that streaming gives the same text.
    const withAdded = { ...obj, added_tokens: addedTokens };
    if (options.trustTokenizerPatterns !== true) checkTokenizerPatterns(withAdded, file);
    let hf: HfLibTokenizer;
    try {
      hf = new HfLibTokenizer(withAdded, { ...cfg, clean_up_tokenization_spaces: false });
    } catch (cause) {
      throw new TokenizerError(`${file}: @huggingface/tokenizers could not build a tokenizer from it (${(cause as Error).message}); replace it with the model's original tokenizer.json`, { file, cause });
    }
    return new HfTokenizer(hf, withAdded, added.matched, cfg, file, settingFiles);
  }

  get bosId(): number {
    if (this.bos === undefined) {
      throw new TokenizerError(
        `${this.file}: this tokenizer has no BOS token (${this.noBosReason}); check hasBos before reading bosId, or name the BOS token in bos_token`,
        { file: this.configFile },
      );
    }
    return this.bos;
  }

  get hasBos(): boolean {
    return this.bos !== undefined;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = text.length === 0 ? [] : this.addedVocabulary === undefined ? this.hf.encode(text, { add_special_tokens: false }).ids : this.encodeWithAdded(text, this.addedVocabulary);
    const { prefix, suffix } = this.specialTokens;
    const bosFirst = this.bos !== undefined && prefix[0] === this.bos;
    const eosLast = suffix.length > 0 && suffix[suffix.length - 1] === this.eosId;
    const addBos = options.addBos ?? bosFirst;
    const addEos = options.addEos ?? eosLast;
    if (addBos && this.bos === undefined) {
      throw new TokenizerError(
        `${this.file}: addBos is true but this tokenizer has no BOS token (${this.noBosReason}); leave addBos unset to add the special tokens of tokenizer.json's post_processor`,
        { file: this.configFile },
      );
    }
    return [
      ...(addBos ? [this.bos as number] : []),
      ...(bosFirst ? prefix.slice(1) : prefix),
      ...ids,
      ...(eosLast ? suffix.slice(0, -1) : suffix),
      ...(addEos ? [this.eosId] : []),
    ];
  }

  /**
   * Ids of `text` as the tokenizers library's AddedVocabulary.extract_and_normalize, pre-tokenizer and model make them:
   * added tokens found in the raw text, the rest normalized, normalized tokens found in each normalized piece, the
   * pieces between pre-tokenized and run through the model. (@huggingface/tokenizers also takes a piece that equals an
   * added token's raw content, or its normalized content in the raw text, as that token: '<a><b>' under a Prepend
   * normalizer would give both, where only '▁<a>' is one.)
   */
  private encodeWithAdded(text: string, added: AddedVocabulary): number[] {
    const { normalizer, pre_tokenizer: preTokenizer, model } = this.hf;
    if (model === null) throw new TokenizerError(`internal: ${this.file} has added tokens to match without a model`);
    const ids: number[] = [];
    for (const segment of added.raw.split(text)) {
      if ('id' in segment) {
        ids.push(segment.id);
        continue;
      }
      for (const part of added.normalized.split(normalizer === null ? segment.text : normalizer.normalize(segment.text))) {
        if ('id' in part) {
          ids.push(part.id);
          continue;
        }
        // Metaspace's prepend_scheme "first" prepends only to the piece at offset 0 of the text.
        const first = segment.start === 0 && part.start === 0;
        const words = preTokenizer === null ? [part.text] : preTokenizer.pre_tokenize(part.text, { section_index: first ? 0 : 1 });
        for (const token of model(words)) {
          const id = model.tokens_to_ids.get(token) ?? model.unk_token_id;
          if (id === undefined) throw new TokenizerError(`${this.file}: the model gave "${token}", which is not in its vocabulary, and it has no unk_token; replace it with the model's original tokenizer.json`, { file: this.file });
          ids.push(id);
        }
      }
    }
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const text = this.decodeRaw(ids, options);
    return this.cleanUp ? cleanUpTokenization(text) : text;
  }

  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    const stream = this.rawStreamDecoder(options);
    return this.cleanUp ? cleanUpStream(stream) : stream;
  }

  /** The decoder's text before the clean-up of spaces. */
  private decodeRaw(ids: readonly number[], options: DecodeOptions): string {
    for (const id of ids) this.checkId(id);
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  private rawStreamDecoder(options: DecodeOptions): StreamDecoder {
    if (this.byteDecoding) return createByteStreamDecoder((id) => this.pieceBytes(id), { ...options, stripLeadingSpace: this.stripLeadingSpace });
    // Re-decode the whole prefix and emit what grew, holding back a trailing U+FFFD (an incomplete character).
    let ids: number[] = [];
    let emitted = '';
    return {
      push: (id: number): string => {
        this.checkId(id);
        ids.push(id);
        const text = this.decodeRaw(ids, options);
        if (text.endsWith('\uFFFD') || !text.startsWith(emitted)) return '';
        const fresh = text.slice(emitted.length);
        emitted = text;
        return fresh;
      },
      flush: (): string => {
        const text = ids.length === 0 ? '' : this.decodeRaw(ids, options);
        const rest = text.startsWith(emitted) ? text.slice(emitted.length) : '';
        ids = [];
        emitted = '';
        return rest;
      },
    };
  }

  idToPiece(id: number): string {
    this.checkId(id);
    return this.hf.id_to_token(id) as string;
  }

  pieceToId(piece: string): number | undefined {
    return this.hf.token_to_id(piece);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
      throw new TokenizerError(`token id ${id} is out of range: ids of this tokenizer are integers from 0 to ${this.vocabSize - 1}`);
    }
  }

  private pieceBytes(id: number): PieceBytes {
    this.checkId(id);
    let piece = this.pieces[id];
    if (piece === undefined) {
      const text = this.hf.id_to_token(id) as string;
      const special = this.specialIds.has(id);
      piece = { special, bytes: special ? utf8.encode(text) : pieceToBytes(text) };
      this.pieces[id] = piece;
    }
    return piece;
  }
}
