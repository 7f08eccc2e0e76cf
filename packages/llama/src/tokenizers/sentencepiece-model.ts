/**
 * SentencePiece `tokenizer.model`: the ModelProto protobuf read and written by hand (the fields a
 * BPE model needs: pieces, trainer_spec's ids and byte fallback, normalizer_spec's flags).
 */
import { ProtoReader, ProtoWriter, WIRE_I32, WIRE_LEN, WIRE_VARINT } from './protobuf.js';
import { TokenizerError } from './tokenizer-errors.js';

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
