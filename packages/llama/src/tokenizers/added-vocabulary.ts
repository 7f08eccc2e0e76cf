/**
 * The added tokens of a tokenizer.json as transformers' PreTrainedTokenizerFast ends up with them: those of the file,
 * then those of added_tokens_decoder and the special tokens it names, each added as the tokenizers library's
 * AddedVocabulary::add_tokens adds it (added_vocabulary.rs).
 */
import { shown } from '../errors.js';
import { tokenName } from './tokenizer-config.js';
import { TokenizerError } from './tokenizer-errors.js';

/** An added token as the tokenizers library holds it. */
export interface AddedTokenFlags {
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  /** Looked for in the normalized text (its content normalized the same way) instead of the raw text. */
  normalized: boolean;
  special: boolean;
}

/** An added token before it is added: as Python's AddedToken, `normalized` left unset follows `!special`. */
interface PendingToken extends Omit<AddedTokenFlags, 'normalized'> {
  normalized: boolean | undefined;
}

/** An added token looked for in text, with its id. */
export interface MatchedToken extends AddedTokenFlags {
  id: number;
}

const resolve = (t: PendingToken): AddedTokenFlags => ({ ...t, normalized: t.normalized ?? !t.special });
const sameToken = (a: AddedTokenFlags, b: AddedTokenFlags): boolean =>
  a.content === b.content && a.singleWord === b.singleWord && a.lstrip === b.lstrip && a.rstrip === b.rstrip && a.normalized === b.normalized && a.special === b.special;

/**
 * The tokenizers library's AddedVocabulary: add_tokens gives a content it knows (a piece of the model or a token added
 * before) that id and any other the next free one (after the model's vocabulary and the added tokens past it); a token
 * equal to one it holds is skipped, one with a known content and other flags replaces that token's flags. The tokens
 * looked for in text are those of each add, in order, the special ones first: an earlier entry of a content stays there,
 * and a content once special stays special for decoding.
 */
class AddedVocabulary {
  private readonly ids = new Map<string, number>();
  private readonly byId = new Map<number, AddedTokenFlags>();
  private readonly plain: AddedTokenFlags[] = [];
  private readonly specials: AddedTokenFlags[] = [];
  private readonly specialContents = new Set<string>();
  /** The highest id added, -1 before any. */
  private highest = -1;

  private readonly modelSize: number;

  constructor(private readonly model: ModelVocabulary) {
    this.modelSize = model.size;
  }

  idOf(content: string): number | undefined {
    return this.ids.get(content) ?? this.model.idOf(content);
  }

  /** True when `content` is an added token (not only a piece of the model). */
  has(content: string): boolean {
    return this.ids.has(content);
  }

  add(tokens: readonly AddedTokenFlags[]): void {
    for (const token of tokens) {
      if (token.special && token.content !== '' && !this.specialContents.has(token.content)) {
        this.specials.push(token);
        this.specialContents.add(token.content);
      }
    }
    for (const token of tokens) {
      // A content has one id, so an equal token can only be the one at the id of its content.
      const known = this.ids.get(token.content);
      const held = known === undefined ? undefined : this.byId.get(known);
      if (token.content === '' || (held !== undefined && sameToken(held, token))) continue;
      let id = this.idOf(token.content);
      if (id === undefined) id = this.highest >= this.modelSize || this.modelSize === 0 ? this.highest + 1 : this.modelSize;
      this.ids.set(token.content, id);
      this.highest = Math.max(this.highest, id);
      this.byId.set(id, token);
      if (!this.specialContents.has(token.content)) this.plain.push(token);
    }
  }

  /** added_tokens_decoder: each added id with its token's flags, `special` true where decode skips it. */
  decoder(): MatchedToken[] {
    return [...this.byId.entries()]
      .sort(([a], [b]) => a - b)
      .map(([id, t]) => ({ ...t, id, special: this.specialContents.has(t.content) }));
  }

  /**
   * The tokens looked for in text, the special ones first: whether in the raw or the normalized text as each entry
   * says; its id, single_word, lstrip and rstrip as the token of that content now has them.
   */
  matched(): MatchedToken[] {
    return [...this.specials, ...this.plain].map((entry) => {
      const id = this.ids.get(entry.content) as number;
      return { ...(this.byId.get(id) as AddedTokenFlags), normalized: entry.normalized, id };
    });
  }
}

/** The added tokens that transformers' fast tokenizer ends up with: see {@link transformersAddedTokens}. */
export interface TransformersAddedTokens {
  /** added_tokens_decoder in id order, `special` true where decode skips the token. */
  decoder: MatchedToken[];
  /** The tokens looked for in text (a content may be there twice: in the raw and in the normalized text). */
  matched: MatchedToken[];
}

/** The flags of a token of tokenizer.json's added_tokens or of added_tokens_decoder (Python's AddedToken(**entry)). */
function pending(entry: Record<string, unknown>, content: string): PendingToken {
  return {
    content,
    singleWord: entry.single_word === true,
    lstrip: entry.lstrip === true,
    rstrip: entry.rstrip === true,
    normalized: typeof entry.normalized === 'boolean' ? entry.normalized : undefined,
    special: entry.special === true,
  };
}

/** PreTrainedTokenizerBase's SPECIAL_TOKENS_ATTRIBUTES but the list, in its order. */
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

/**
 * The special tokens that a tokenizer_config.json (completed from special_tokens_map.json) names, as
 * all_special_tokens_extended lists them: its seven keys, additional_special_tokens, then extra_special_tokens, each
 * content once; a token given as `{ "content": ... }` keeps its flags. Null and "" name none.
 */
export function namedSpecialTokens(config: Record<string, unknown>): { key: string; token: string | PendingToken }[] {
  const values: { key: string; value: unknown }[] = SPECIAL_TOKEN_KEYS.map((key) => ({ key, value: config[key] }));
  if (Array.isArray(config.additional_special_tokens)) {
    for (const value of config.additional_special_tokens) values.push({ key: 'additional_special_tokens', value });
  }
  const extra = config.extra_special_tokens;
  if (typeof extra === 'object' && extra !== null && !Array.isArray(extra)) {
    for (const [key, value] of Object.entries(extra)) values.push({ key, value });
  }
  const seen = new Set<string>();
  const out: { key: string; token: string | PendingToken }[] = [];
  for (const { key, value } of values) {
    const content = tokenName(value);
    if (content === undefined || content === '' || seen.has(content)) continue;
    seen.add(content);
    out.push({ key, token: typeof value === 'string' ? value : pending(value as Record<string, unknown>, content) });
  }
  return out;
}

/**
 * The special tokens that `config` names (see {@link namedSpecialTokens}) as transformers adds one that the tokenizer
 * lacks: special, and not normalized unless a token given with flags says so.
 */
export function namedSpecialTokenFlags(config: Record<string, unknown>): AddedTokenFlags[] {
  return namedSpecialTokens(config).map(({ token }) =>
    resolve(typeof token === 'string' ? { content: token, singleWord: false, lstrip: false, rstrip: false, normalized: undefined, special: true } : { ...token, special: true }),
  );
}

/** The pieces of a tokenizer.json's model: a BPE / WordPiece / WordLevel map of piece to id, or Unigram's [piece, score] list. */
interface ModelVocabulary {
  idOf(piece: string): number | undefined;
  size: number;
}

function modelVocabulary(vocab: unknown): ModelVocabulary {
  if (Array.isArray(vocab)) {
    let ids: Map<string, number> | undefined;
    return {
      idOf: (piece) => (ids ??= new Map(vocab.map((entry, id) => [String((entry as unknown[])[0]), id]))).get(piece),
      size: vocab.length,
    };
  }
  const map = vocab as Record<string, unknown>;
  return { idOf: (piece) => (Object.hasOwn(map, piece) && typeof map[piece] === 'number' ? map[piece] : undefined), size: Object.keys(map).length };
}

/**
 * The added tokens of a tokenizer.json with its tokenizer_config.json as transformers 4.57's AutoTokenizer makes them
 * (PreTrainedTokenizerBase._from_pretrained, PreTrainedTokenizerFast.__init__). The tokenizers library adds the file's
 * added_tokens one by one, so an id written there that is not the next free one is not used. transformers then adds,
 * in one add_tokens, every token of added_tokens_decoder in the order of its id (the config's; where the config has
 * none, `legacy`, that built from added_tokens.json with tokenizer.json's added tokens put over it by id), then each
 * named special token (see {@link namedSpecialTokens}) the tokenizer does not already have as an added token; a token
 * named as special is marked special. So a special token missing from the vocabulary takes the next free id, and an id
 * of added_tokens_decoder or added_tokens.json that is not the next free one is not used either.
 * `decoderFile` names the file of added_tokens_decoder in errors.
 */
export function transformersAddedTokens(json: Record<string, unknown>, config: Record<string, unknown>, legacy: boolean, decoderFile: string): TransformersAddedTokens {
  const model = json.model as { vocab: unknown };
  const vocabulary = new AddedVocabulary(modelVocabulary(model.vocab));
  const own = Array.isArray(json.added_tokens) ? (json.added_tokens as Record<string, unknown>[]) : [];
  for (const entry of own) vocabulary.add([resolve(pending(entry, String(entry.content)))]);

  const decoder = new Map<number, PendingToken>();
  const given = config.added_tokens_decoder;
  if (typeof given === 'object' && given !== null) {
    for (const [key, entry] of Object.entries(given as Record<string, unknown>)) {
      const content = tokenName(entry);
      const id = Number(key);
      if (content === undefined || !Number.isInteger(id) || id < 0) {
        throw new TokenizerError(`${decoderFile}: added_tokens_decoder["${key}"] is ${shown(entry)}, expected an integer id mapped to { "content": ... }; fix it in ${decoderFile}`, { file: decoderFile });
      }
      decoder.set(id, pending(entry as Record<string, unknown>, content));
    }
  }
  if (legacy) for (const entry of own) decoder.set(Number(entry.id), pending(entry, String(entry.content)));
  const toAdd: (string | PendingToken)[] = [...decoder.entries()].sort(([a], [b]) => a - b).map(([, t]) => t);

  const named = namedSpecialTokens(config);
  const namedContents = new Set(named.map(({ token }) => (typeof token === 'string' ? token : token.content)));
  const inDecoder = new Set([...decoder.values()].map((t) => t.content));
  for (const { key, token } of named) {
    const content = typeof token === 'string' ? token : token.content;
    // _from_pretrained hands a special token of the seven keys that added_tokens_decoder has as that very token; one
    // given as a string is left out where the tokenizer or added_tokens_decoder has its content, one with flags where
    // a token equal to it is already to be added.
    if (key !== 'additional_special_tokens' && inDecoder.has(content)) continue;
    const known = typeof token === 'string' ? vocabulary.has(content) || inDecoder.has(content) : toAdd.some((t) => typeof t !== 'string' && sameToken(resolve(t), resolve(token)));
    if (!known) toAdd.push(token);
  }
  vocabulary.add(
    toAdd.map((token) => {
      const t = typeof token === 'string' ? { content: token, singleWord: false, lstrip: false, rstrip: false, normalized: undefined, special: true } : token;
      return resolve({ ...t, special: t.special || namedContents.has(t.content) });
    }),
  );
  return { decoder: vocabulary.decoder(), matched: vocabulary.matched() };
}
