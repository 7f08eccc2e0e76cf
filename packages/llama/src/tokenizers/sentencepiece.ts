/**
 * `SentencePieceTokenizer`: encoding by SentencePiece's BPE (merge by piece score, leftmost first,
 * byte fallback) and decoding, over a `tokenizer.model` read by sentencepiece-model.ts, with the
 * special tokens and `legacy` / `add_prefix_space` settings of transformers' LlamaTokenizerFast.
 */
import { TokenMatcher, type WholeToken } from './added-tokens.js';
import { namedSpecialTokenFlags } from './added-vocabulary.js';
import { PieceType, parseSentencePieceModel, type SentencePiece, type SentencePieceModel } from './sentencepiece-model.js';
import { cleanUpTokenization, llamaTokenizerSettings, specialTokenId, withClassDefaults, type LlamaTokenizerSettings, type SettingFiles } from './tokenizer-config.js';
import { TokenizerError } from './tokenizer-errors.js';
import {
  cleanUpStream,
  createByteStreamDecoder,
  decodeBytes,
  pieceToBytes,
  type ByteDecodeOptions,
  type DecodeOptions,
  type EncodeOptions,
  type PieceBytes,
  type StreamDecoder,
  type Tokenizer,
} from './tokenizer.js';

const SPACE = '\u2581';

/** A pending merge of symbol `left` with the symbol after it. */
interface Candidate {
  left: number;
  right: number;
  score: number;
  piece: string;
}

/** Max-heap on score, then on the leftmost position (SentencePiece's agenda order). */
class Agenda {
  private heap: Candidate[] = [];

  private before(a: Candidate, b: Candidate): boolean {
    return a.score !== b.score ? a.score > b.score : a.left < b.left;
  }

  push(c: Candidate): void {
    const h = this.heap;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i] as Candidate, h[p] as Candidate)) break;
      [h[i], h[p]] = [h[p] as Candidate, h[i] as Candidate];
      i = p;
    }
  }

  pop(): Candidate | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l] as Candidate, h[m] as Candidate)) m = l;
        if (r < h.length && this.before(h[r] as Candidate, h[m] as Candidate)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Candidate, h[i] as Candidate];
        i = m;
      }
    }
    return top;
  }
}

/**
 * A SentencePiece BPE tokenizer read from `tokenizer.model`, encoding as
 * transformers' LlamaTokenizerFast does when a folder has no tokenizer.json
 * (the tokenizer that LlamaConverter builds from the model and tokenizer_config.json).
 *
 * The text is first cut at special and added tokens (control and user-defined
 * pieces, and the tokens tokenizer_config.json names), leftmost and
 * longest first; each becomes its id. Each piece of text between them is then
 * prepared: spaces become '▁', and a '▁' goes in front of every piece (`legacy`,
 * the default) or only of a piece at the start of the text that does not already
 * begin with '▁' (`legacy: false`); `add_prefix_space: false` puts none. SentencePiece's
 * BPE then merges the adjacent pair whose concatenation is a piece of highest
 * score, leftmost first on ties, until none is left; characters without a piece
 * become `<0xXX>` byte pieces (byte_fallback) or `<unk>`.
 *
 * @example
 * const tok = SentencePieceTokenizer.fromBytes(readFileSync('tokenizer.model'));
 * tok.encode('the'); // [1, 278] with LLaMA's vocabulary
 * tok.encode('<s>the', { addBos: false }); // [1, 278]
 */
export class SentencePieceTokenizer implements Tokenizer {
  private readonly bos: number | undefined;
  readonly eosId: number;
  readonly padId: number;
  readonly vocabSize: number;
  readonly model: SentencePieceModel;
  /** The tokenizer_config.json settings it was built with (transformers' defaults when none). */
  readonly settings: LlamaTokenizerSettings;
  /** Pieces that may result from a merge (NORMAL and USER_DEFINED) → id. */
  private readonly mergeable = new Map<string, number>();
  private readonly ids = new Map<string, number>();
  private readonly userDefined: string[];
  private readonly byteIds: (number | undefined)[] = new Array(256).fill(undefined);
  private readonly decodeTable: PieceBytes[];
  /** Pieces of the ids past the model's, from added_tokens_decoder. */
  private readonly addedPieces: string[] = [];
  /** Tokens found whole in the raw text, and those found in each normalized piece of it. */
  private readonly rawTokens: TokenMatcher;
  private readonly normalizedTokens: TokenMatcher;
  private readonly file: string;
  /** The file of bos_token null, for errors. */
  private readonly bosFile: string;

  /**
   * `config` is the parsed tokenizer_config.json beside the model (`{}` when there is none), completed from
   * special_tokens_map.json and added_tokens.json where transformers reads them; `file` names the model in errors, and
   * `settingFiles` the file of a setting that came from another file than tokenizer_config.json.
   * A special token it leaves out takes LlamaTokenizer's default (see withClassDefaults).
   */
  constructor(model: SentencePieceModel, file = 'tokenizer.model', givenConfig: Record<string, unknown> = {}, settingFiles: SettingFiles = {}) {
    if (model.modelType !== 2) {
      throw new TokenizerError(`${file}: trainer_spec.model_type is ${model.modelType}, only BPE (2) is supported; use the model's tokenizer.json instead`, { file });
    }
    if (model.precompiledCharsmapLength > 0 && model.normalizerName !== 'identity') {
      throw new TokenizerError(`${file}: normalizer "${model.normalizerName}" with a precompiled charsmap is not supported, only "identity"; use the model's tokenizer.json instead`, { file });
    }
    const n = model.pieces.length;
    for (const [key, id] of [['unk_id', model.unkId], ['bos_id', model.bosId], ['eos_id', model.eosId]] as const) {
      if (!(id >= 0 && id < n)) {
        throw new TokenizerError(`${file}: trainer_spec.${key} is ${id}, expected an id from 0 to ${n - 1}; replace it with the model's original tokenizer.model`, { file });
      }
    }
    this.model = model;
    this.file = file;
    const configFile = file.replace(/tokenizer\.model$/, 'tokenizer_config.json');
    this.bosFile = settingFiles.bos_token ?? configFile;
    const config = withClassDefaults(givenConfig, true);
    this.settings = llamaTokenizerSettings(config, configFile);
    const userDefined: string[] = [];
    model.pieces.forEach((p, id) => {
      if (!this.ids.has(p.piece)) this.ids.set(p.piece, id);
      if (p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED) this.mergeable.set(p.piece, id);
      if (p.type === PieceType.USER_DEFINED) userDefined.push(p.piece);
      if (p.type === PieceType.BYTE) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p.piece);
        if (m === null) throw new TokenizerError(`${file}: byte piece ${id} is "${p.piece}", expected <0xXX>; replace it with the model's original tokenizer.model`, { file });
        this.byteIds[parseInt(m[1] as string, 16)] = id;
      }
    });
    this.userDefined = userDefined.sort((a, b) => b.length - a.length);
    // LlamaConverter adds control pieces as special tokens and user-defined pieces as plain added
    // tokens; tokenizer_config.json's special tokens are special too. The unknown piece is one only where unk_token
    // names it: it is no added token of SpmConverter's.
    const special = new Set<number>();
    const raw = new Map<string, WholeToken>();
    const plain = (content: string, id: number): WholeToken => ({ content, id, lstrip: false, rstrip: false, singleWord: false });
    model.pieces.forEach((p, id) => {
      if (p.type === PieceType.CONTROL) special.add(id);
      if (p.type === PieceType.CONTROL || p.type === PieceType.USER_DEFINED) raw.set(p.piece, plain(p.piece, id));
    });
    for (const name of this.settings.specialTokens) {
      const id = this.ids.get(name);
      if (id === undefined) continue;
      special.add(id);
      raw.set(name, plain(name, id));
    }
    // added_tokens_decoder, then the special tokens named that the model does not have, as transformers adds them: a
    // piece of the model keeps its id; any other token takes the next id after the model's (the id written in
    // added_tokens_decoder or added_tokens.json is not used). A token named as special is special; one that is special
    // stays special for decoding.
    const addPiece = (content: string): number => {
      const id = n + this.addedPieces.length;
      this.addedPieces.push(content);
      this.ids.set(content, id);
      return id;
    };
    const specialNames = new Set(this.settings.specialTokens);
    const normalized = new Map<string, WholeToken>();
    for (const added of this.settings.addedTokens) {
      const id = this.ids.get(added.content) ?? addPiece(added.content);
      if (added.special || specialNames.has(added.content)) special.add(id);
      const token = { content: added.content, id, lstrip: added.lstrip, rstrip: added.rstrip, singleWord: added.singleWord };
      raw.delete(added.content);
      if (added.normalized) normalized.set(added.content, { ...token, content: this.settings.legacy ? this.normalize(added.content) : added.content });
      else raw.set(added.content, token);
    }
    for (const named of namedSpecialTokenFlags(config)) {
      if (this.ids.has(named.content)) continue;
      const id = addPiece(named.content);
      special.add(id);
      const token = { content: named.content, id, lstrip: named.lstrip, rstrip: named.rstrip, singleWord: named.singleWord };
      if (named.normalized) normalized.set(named.content, { ...token, content: this.settings.legacy ? this.normalize(named.content) : named.content });
      else raw.set(named.content, token);
    }
    // Every special token named is a piece or an added token by now.
    // bos_token or eos_token "" without an unk_token to take the id of (decapoda-research's conversion gives all three
    // ""), which transformers cannot load, take the model's own.
    const idOf = (content: string): number | undefined => this.ids.get(content);
    this.bos = config.bos_token === null ? undefined : (specialTokenId(config, 'bos_token', idOf) ?? model.bosId);
    if (this.bos === undefined && this.settings.addBosToken) {
      throw new TokenizerError(
        `${configFile}: add_bos_token is ${config.add_bos_token === true ? 'true' : 'unset (true for LlamaTokenizer)'} but ${this.bosFile === configFile ? 'bos_token is null' : `${this.bosFile} has bos_token null`}; set add_bos_token to false or name the BOS token in bos_token${this.bosFile === configFile ? '' : ` of ${this.bosFile}`}`,
        { file: configFile },
      );
    }
    // A tokenizer here always has an EOS: eos_token null, no token to transformers, takes the model's own, except where
    // add_eos_token would put it last, which LlamaTokenizerFast refuses.
    if (config.eos_token === null && this.settings.addEosToken) {
      const eosFile = settingFiles.eos_token ?? configFile;
      throw new TokenizerError(
        `${configFile}: add_eos_token is true but ${eosFile === configFile ? 'eos_token is null' : `${eosFile} has eos_token null`}; set add_eos_token to false or name the EOS token in eos_token${eosFile === configFile ? '' : ` of ${eosFile}`}`,
        { file: configFile },
      );
    }
    this.eosId = specialTokenId(config, 'eos_token', idOf) ?? model.eosId;
    this.vocabSize = n + this.addedPieces.length;
    this.padId = specialTokenId(config, 'pad_token', idOf) ?? (model.padId >= 0 ? model.padId : model.unkId);
    this.rawTokens = new TokenMatcher(raw.values());
    this.normalizedTokens = new TokenMatcher(normalized.values());
    const encoder = new TextEncoder();
    this.decodeTable = [...model.pieces.map((p) => p.piece), ...this.addedPieces].map((piece, id) => {
      const isSpecial = special.has(id);
      return { special: isSpecial, bytes: isSpecial ? encoder.encode(piece) : pieceToBytes(piece) };
    });
  }

  /**
   * Reads a `tokenizer.model` file's bytes with the parsed tokenizer_config.json beside it
   * (`{}` when there is none); `file` names the model in errors, `settingFiles` as for the constructor.
   */
  static fromBytes(bytes: Uint8Array, file = 'tokenizer.model', config: Record<string, unknown> = {}, settingFiles: SettingFiles = {}): SentencePieceTokenizer {
    return new SentencePieceTokenizer(parseSentencePieceModel(bytes, file), file, config, settingFiles);
  }

  /** Beginning-of-sequence id; a `TokenizerError` where bos_token is null ({@link hasBos} false). */
  get bosId(): number {
    if (this.bos === undefined) {
      throw new TokenizerError(`${this.file}: this tokenizer has no BOS token (${this.bosFile} has bos_token null); check hasBos before reading bosId, or name the BOS token in bos_token`, {
        file: this.bosFile,
      });
    }
    return this.bos;
  }

  /** False where bos_token is null. */
  get hasBos(): boolean {
    return this.bos !== undefined;
  }

  /**
   * The text that BPE is run on for a piece of text between special tokens; `atStart` when the
   * piece begins the whole text. Spaces become '▁'. Legacy: a '▁' goes in front of every non-empty
   * piece (LlamaConverter's Prepend + Replace normalizers). Otherwise only the piece at the start
   * gets one, when it has none (LlamaConverter's Metaspace pre-tokenizer, prepend_scheme "first").
   * `add_prefix_space: false` puts none. As in LlamaConverter, the model's own normalizer_spec
   * (add_dummy_prefix, remove_extra_whitespaces) is not used.
   */
  normalize(text: string, atStart = true): string {
    const prefix = this.settings.addPrefixSpace ?? true;
    const t = text.replaceAll(' ', SPACE);
    if (t.length === 0 || !prefix) return t;
    if (this.settings.legacy) return SPACE + t;
    return atStart && !t.startsWith(SPACE) ? SPACE + t : t;
  }

  /**
   * Token ids of `text` without BOS/EOS, as the tokenizers library's AddedVocabulary.extract_and_normalize
   * and LlamaConverter's normalizer or pre-tokenizer make them: tokens found whole in the raw text,
   * then in each normalized piece of it the normalized tokens, then BPE on the rest.
   */
  private encodeText(text: string): number[] {
    const ids: number[] = [];
    for (const segment of this.rawTokens.split(text)) {
      if ('id' in segment) {
        ids.push(segment.id);
        continue;
      }
      const normalized = this.settings.legacy ? this.normalize(segment.text) : segment.text;
      for (const part of this.normalizedTokens.split(normalized)) {
        if ('id' in part) ids.push(part.id);
        else for (const id of this.bpe(this.settings.legacy ? part.text : this.normalize(part.text, segment.start + part.start === 0))) ids.push(id);
      }
    }
    return ids;
  }

  /** Token ids of an already normalized piece of text. */
  private bpe(normalized: string): number[] {
    if (normalized.length === 0) return [];
    const symbols: string[] = [];
    for (let i = 0; i < normalized.length; ) {
      const user = this.userDefined.find((u) => normalized.startsWith(u, i));
      const cp = normalized.codePointAt(i) as number;
      const piece = user ?? String.fromCodePoint(cp);
      symbols.push(piece);
      i += piece.length;
    }
    const n = symbols.length;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const agenda = new Agenda();
    const consider = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const piece = (symbols[left] as string) + (symbols[right] as string);
      const id = this.mergeable.get(piece);
      if (id === undefined) return;
      agenda.push({ left, right, score: (this.model.pieces[id] as SentencePiece).score, piece });
    };
    for (let i = 0; i + 1 < n; i++) consider(i, i + 1);
    for (let c = agenda.pop(); c !== undefined; c = agenda.pop()) {
      // Skip candidates made stale by an earlier merge of either symbol.
      if (symbols[c.left] === '' || symbols[c.right] === '' || next[c.left] !== c.right) continue;
      if ((symbols[c.left] as string) + (symbols[c.right] as string) !== c.piece) continue;
      symbols[c.left] = c.piece;
      symbols[c.right] = '';
      const after = next[c.right] as number;
      next[c.left] = after;
      if (after >= 0) prev[after] = c.left;
      consider(prev[c.left] as number, c.left);
      consider(c.left, after);
    }
    const out: number[] = [];
    const encoder = new TextEncoder();
    for (let i = 0; i >= 0 && i < n; i = next[i] as number) {
      const s = symbols[i] as string;
      const id = this.mergeable.get(s);
      if (id !== undefined) {
        out.push(id);
      } else if (this.model.byteFallback) {
        for (const b of encoder.encode(s)) out.push(this.byteIds[b] ?? this.model.unkId);
      } else {
        out.push(this.model.unkId);
      }
    }
    return out;
  }

  /** Token ids of `text`; BOS first and EOS last as `add_bos_token` / `add_eos_token` say unless `options` does. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if (options.addBos ?? this.settings.addBosToken) {
      if (this.bos === undefined) {
        throw new TokenizerError(`${this.file}: addBos is true but this tokenizer has no BOS token (${this.bosFile} has bos_token null); leave addBos unset or name the BOS token in bos_token`, {
          file: this.bosFile,
        });
      }
      ids.push(this.bos);
    }
    for (const id of this.encodeText(text)) ids.push(id);
    if (options.addEos ?? this.settings.addEosToken) ids.push(this.eosId);
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const text = decodeBytes((id) => this.lookup(id), ids, this.decodeOptions(options));
    return this.settings.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
  }

  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    const stream = createByteStreamDecoder((id) => this.lookup(id), this.decodeOptions(options));
    return this.settings.cleanUpTokenizationSpaces ? cleanUpStream(stream) : stream;
  }

  /** LlamaConverter's decoder strips the first space only when add_prefix_space is not false. */
  private decodeOptions(options: DecodeOptions): ByteDecodeOptions {
    return { ...options, stripLeadingSpace: this.settings.addPrefixSpace ?? true };
  }

  idToPiece(id: number): string {
    const n = this.model.pieces.length;
    return this.checkId(id) < n ? (this.model.pieces[id]?.piece as string) : (this.addedPieces[id - n] as string);
  }

  pieceToId(piece: string): number | undefined {
    return this.ids.get(piece);
  }

  private checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError(`token id ${id} is out of range: ids of this tokenizer are integers from 0 to ${this.vocabSize - 1}`);
    }
    return id;
  }

  private lookup(id: number): PieceBytes {
    return this.decodeTable[this.checkId(id)] as PieceBytes;
  }
}
