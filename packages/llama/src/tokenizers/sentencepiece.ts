/**
 * `SentencePieceTokenizer`: encoding by SentencePiece's BPE (merge by piece score, leftmost first,
 * byte fallback) and decoding, over a `tokenizer.model` read by sentencepiece-model.ts.
 */
import { PieceType, parseSentencePieceModel, type SentencePiece, type SentencePieceModel } from './sentencepiece-model.js';
import { TokenizerError } from './tokenizer-errors.js';
import {
  createByteStreamDecoder,
  decodeBytes,
  pieceToBytes,
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
 * A SentencePiece BPE tokenizer read from `tokenizer.model`.
 *
 * Encoding follows SentencePiece: spaces become '▁' and one '▁' is put in
 * front (add_dummy_prefix); the text is split into characters (user-defined
 * pieces kept whole); the adjacent pair whose concatenation is a piece of
 * highest score is merged, leftmost first on ties, until none is left;
 * characters without a piece become `<0xXX>` byte pieces (byte_fallback) or
 * `<unk>`. Control and unknown pieces in the text are ordinary characters.
 *
 * @example
 * const tok = SentencePieceTokenizer.fromBytes(readFileSync('tokenizer.model'));
 * tok.encode('the'); // [1, 278] with LLaMA's vocabulary
 */
export class SentencePieceTokenizer implements Tokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly vocabSize: number;
  readonly model: SentencePieceModel;
  /** Pieces that may result from a merge (NORMAL and USER_DEFINED) → id. */
  private readonly mergeable = new Map<string, number>();
  private readonly ids = new Map<string, number>();
  private readonly userDefined: string[];
  private readonly byteIds: (number | undefined)[] = new Array(256).fill(undefined);
  private readonly decodeTable: PieceBytes[];

  constructor(model: SentencePieceModel, file = 'tokenizer.model') {
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
    this.vocabSize = n;
    this.bosId = model.bosId;
    this.eosId = model.eosId;
    this.padId = model.padId >= 0 ? model.padId : model.unkId;
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
    const encoder = new TextEncoder();
    this.decodeTable = model.pieces.map((p) => {
      const special = p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN;
      return { special, bytes: special ? encoder.encode(p.piece) : pieceToBytes(p.piece) };
    });
  }

  /** Reads a `tokenizer.model` file's bytes; `file` names it in errors. */
  static fromBytes(bytes: Uint8Array, file = 'tokenizer.model'): SentencePieceTokenizer {
    return new SentencePieceTokenizer(parseSentencePieceModel(bytes, file), file);
  }

  /** The text SentencePiece's normalizer makes of `text` before BPE. */
  normalize(text: string): string {
    let t = text;
    if (this.model.removeExtraWhitespaces) t = t.replace(/ +/g, ' ').replace(/^ | $/g, '');
    if (t.length === 0) return '';
    if (this.model.escapeWhitespaces) t = t.replaceAll(' ', SPACE);
    if (this.model.addDummyPrefix) t = (this.model.escapeWhitespaces ? SPACE : ' ') + t;
    return t;
  }

  /** Token ids of `text` without BOS/EOS. */
  private bpe(text: string): number[] {
    const normalized = this.normalize(text);
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

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.bpe(text);
    if (options.addBos ?? true) ids.unshift(this.bosId);
    if (options.addEos ?? false) ids.push(this.eosId);
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return decodeBytes((id) => this.lookup(id), ids, options);
  }

  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return createByteStreamDecoder((id) => this.lookup(id), options);
  }

  idToPiece(id: number): string {
    return this.model.pieces[this.checkId(id)]?.piece as string;
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
