/**
 * SentencePiece `tokenizer.model`: the ModelProto protobuf read and written by
 * hand (the fields a BPE model needs), and `SentencePieceTokenizer`, which
 * encodes by SentencePiece's BPE (merge by piece score, byte fallback).
 */
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

/** `SentencePiece.Type` of sentencepiece_model.proto. */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

/** One vocabulary entry: `ModelProto.pieces[i]`. */
export interface SentencePiece {
  piece: string;
  score: number;
  type: PieceType;
}

/** The parts of `ModelProto` that encoding and decoding use. */
export interface SentencePieceModel {
  pieces: SentencePiece[];
  /** trainer_spec.model_type: 1 unigram, 2 BPE, 3 word, 4 char. */
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  /** -1 when the model has no padding piece (LLaMA). */
  padId: number;
  /** normalizer_spec.name, e.g. 'identity' (LLaMA) or 'nmt_nfkc'. */
  normalizerName: string;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  /** Length of normalizer_spec.precompiled_charsmap; only 0 is supported. */
  precompiledCharsmapLength: number;
}

// ---------------------------------------------------------------- wire format

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class ProtoReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    readonly view: DataView,
    start: number,
    readonly end: number,
    readonly where: string,
  ) {
    this.pos = start;
  }

  fail(what: string): never {
    throw new Error(`${this.where} at byte ${this.pos}: ${what}`);
  }

  /** A varint as a bigint (up to 64 bits). */
  varintBig(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    return this.fail('varint longer than 10 bytes');
  }

  /** A varint that fits a JS number exactly (lengths, tags, enums, bools). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    this.pos -= 7;
    const big = this.varintBig();
    return Number(BigInt.asIntN(64, big));
  }

  int32(): number {
    return Number(BigInt.asIntN(32, this.varintBig()));
  }

  float(): number {
    if (this.pos + 4 > this.end) this.fail('truncated float');
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Bounds [start, end) of a length-delimited field. */
  bytes(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len < 0 || start + len > this.end) this.fail(`length ${len} runs past the end of the message`);
    this.pos = start + len;
    return [start, start + len];
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varintBig();
    else if (wire === WIRE_I64) this.pos += 8;
    else if (wire === WIRE_LEN) this.bytes();
    else if (wire === WIRE_I32) this.pos += 4;
    else this.fail(`unknown wire type ${wire}`);
    if (this.pos > this.end) this.fail('field runs past the end of the message');
  }

  sub(range: [number, number], where: string): ProtoReader {
    return new ProtoReader(this.buf, this.view, range[0], range[1], where);
  }
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses a SentencePiece `tokenizer.model` (a serialized ModelProto).
 * Throws `TokenizerError` naming `file` when the bytes are not a ModelProto.
 */
export function parseSentencePieceModel(bytes: Uint8Array, file = 'tokenizer.model'): SentencePieceModel {
  const model: SentencePieceModel = {
    pieces: [],
    modelType: 1,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    normalizerName: '',
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    precompiledCharsmapLength: 0,
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const top = new ProtoReader(bytes, view, 0, bytes.length, 'ModelProto');
  const str = (r: ProtoReader, range: [number, number]): string => {
    try {
      return utf8Fatal.decode(bytes.subarray(range[0], range[1]));
    } catch {
      return r.fail('string field is not valid UTF-8');
    }
  };
  try {
    while (top.pos < top.end) {
      const tag = top.varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (field === 1 && wire === WIRE_LEN) {
        const r = top.sub(top.bytes(), `ModelProto.pieces[${model.pieces.length}]`);
        const piece: SentencePiece = { piece: '', score: 0, type: PieceType.NORMAL };
        while (r.pos < r.end) {
          const t = r.varint();
          const f = Math.floor(t / 8);
          const w = t & 7;
          if (f === 1 && w === WIRE_LEN) piece.piece = str(r, r.bytes());
          else if (f === 2 && w === WIRE_I32) piece.score = r.float();
          else if (f === 3 && w === WIRE_VARINT) {
            const type = r.varint();
            if (type < 1 || type > 6) r.fail(`piece type ${type} is not one of 1..6`);
            piece.type = type as PieceType;
          } else r.skip(w);
        }
        model.pieces.push(piece);
      } else if (field === 2 && wire === WIRE_LEN) {
        const r = top.sub(top.bytes(), 'ModelProto.trainer_spec');
        while (r.pos < r.end) {
          const t = r.varint();
          const f = Math.floor(t / 8);
          const w = t & 7;
          if (w !== WIRE_VARINT) r.skip(w);
          else if (f === 3) model.modelType = r.varint();
          else if (f === 35) model.byteFallback = r.varint() !== 0;
          else if (f === 40) model.unkId = r.int32();
          else if (f === 41) model.bosId = r.int32();
          else if (f === 42) model.eosId = r.int32();
          else if (f === 43) model.padId = r.int32();
          else r.skip(w);
        }
      } else if (field === 3 && wire === WIRE_LEN) {
        const r = top.sub(top.bytes(), 'ModelProto.normalizer_spec');
        while (r.pos < r.end) {
          const t = r.varint();
          const f = Math.floor(t / 8);
          const w = t & 7;
          if (f === 1 && w === WIRE_LEN) model.normalizerName = str(r, r.bytes());
          else if (f === 2 && w === WIRE_LEN) {
            const [s, e] = r.bytes();
            model.precompiledCharsmapLength = e - s;
          } else if (f === 3 && w === WIRE_VARINT) model.addDummyPrefix = r.varint() !== 0;
          else if (f === 4 && w === WIRE_VARINT) model.removeExtraWhitespaces = r.varint() !== 0;
          else if (f === 5 && w === WIRE_VARINT) model.escapeWhitespaces = r.varint() !== 0;
          else r.skip(w);
        }
      } else {
        top.skip(wire);
      }
    }
  } catch (cause) {
    throw new TokenizerError(
      `${file}: not a SentencePiece model (${(cause as Error).message}); replace it with the model's original tokenizer.model`,
      { file, cause },
    );
  }
  if (model.pieces.length === 0) {
    throw new TokenizerError(`${file}: a SentencePiece model needs pieces, got none in ${bytes.length} bytes; replace it with the model's original tokenizer.model`, { file });
  }
  return model;
}

class ProtoWriter {
  private chunks: number[] = [];

  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    for (const b of data) this.chunks.push(b);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  float(field: number, value: number): void {
    this.tag(field, WIRE_I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    for (const x of b) this.chunks.push(x);
  }

  int(field: number, value: number | boolean): void {
    this.tag(field, WIRE_VARINT);
    this.varint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

/**
 * Serializes `model` as a ModelProto (a `tokenizer.model` file). Scores are
 * stored as float32, as in the proto.
 */
export function writeSentencePieceModel(model: SentencePieceModel): Uint8Array {
  const out = new ProtoWriter();
  for (const p of model.pieces) {
    const w = new ProtoWriter();
    w.string(1, p.piece);
    w.float(2, p.score);
    w.int(3, p.type);
    out.bytes(1, w.finish());
  }
  const trainer = new ProtoWriter();
  trainer.int(3, model.modelType);
  trainer.int(4, model.pieces.length);
  trainer.int(35, model.byteFallback);
  trainer.int(40, model.unkId);
  trainer.int(41, model.bosId);
  trainer.int(42, model.eosId);
  trainer.int(43, model.padId);
  out.bytes(2, trainer.finish());
  const normalizer = new ProtoWriter();
  normalizer.string(1, model.normalizerName);
  normalizer.int(3, model.addDummyPrefix);
  normalizer.int(4, model.removeExtraWhitespaces);
  normalizer.int(5, model.escapeWhitespaces);
  out.bytes(3, normalizer.finish());
  return out.finish();
}

// ---------------------------------------------------------------- BPE

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
