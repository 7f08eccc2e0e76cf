/**
 * Builds both tokenizer files of a LLaMA-style vocabulary from its pieces and
 * BPE merges: `tokenizer.json` in the layout of Hugging Face's LLaMA
 * conversion, and a SentencePiece `tokenizer.model` whose scores give the same merges.
 */
import { PieceType, type SentencePiece, type SentencePieceModel } from './sentencepiece-model.js';
import { TokenizerError } from './tokenizer-errors.js';

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/** Pieces by id and merges in priority order, the data of a BPE vocabulary. */
export interface BpeVocabulary {
  /** Piece of each id: `<unk>`, `<s>`, `</s>`, `<0x00>`…`<0xFF>`, then '▁▁', '▁t', … for LLaMA. */
  pieces: readonly string[];
  /** Merges, highest priority first, as pairs of pieces whose concatenation is a piece. */
  merges: readonly (readonly [string, string])[];
}

const SPECIALS = ['<unk>', '<s>', '</s>'] as const;

function checkVocabulary(vocab: BpeVocabulary): Map<string, number> {
  const ids = new Map<string, number>();
  vocab.pieces.forEach((p, id) => {
    if (ids.has(p)) throw new TokenizerError(`vocabulary: piece "${p}" appears twice (ids ${ids.get(p)} and ${id}); pieces must be unique`);
    ids.set(p, id);
  });
  SPECIALS.forEach((s, id) => {
    if (vocab.pieces[id] !== s) throw new TokenizerError(`vocabulary: id ${id} must be "${s}" as in LLaMA, got "${vocab.pieces[id]}"`);
  });
  vocab.merges.forEach(([a, b], rank) => {
    if (!ids.has(a + b) || !ids.has(a) || !ids.has(b)) {
      throw new TokenizerError(`vocabulary: merge ${rank} ("${a}" "${b}") needs both parts and "${a + b}" in the pieces`);
    }
  });
  return ids;
}

function pieceType(piece: string, id: number): PieceType {
  if (id === 0) return PieceType.UNKNOWN;
  if (id < SPECIALS.length) return PieceType.CONTROL;
  if (BYTE_PIECE.test(piece)) return PieceType.BYTE;
  return PieceType.NORMAL;
}

/**
 * The `tokenizer.json` object (Hugging Face's LlamaTokenizerFast layout): BPE
 * with byte fallback, normalizer Prepend '▁' + Replace ' ' → '▁', decoder
 * Replace/ByteFallback/Fuse/Strip, `<unk>`/`<s>`/`</s>` added tokens, and a
 * template that puts `<s>` first.
 */
export function bpeTokenizerJson(vocab: BpeVocabulary): Record<string, unknown> {
  checkVocabulary(vocab);
  const added = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const vocabObject: Record<string, number> = {};
  vocab.pieces.forEach((p, id) => {
    vocabObject[p] = id;
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, id) => added(s, id)),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: vocabObject,
      merges: vocab.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/**
 * A SentencePiece BPE model of the same vocabulary. SentencePiece merges the
 * pair whose result has the highest score, so each piece's score is minus the
 * rank of the first merge that makes it: merging by score then follows the
 * merge list. Pieces no merge makes (single characters) score below all of
 * them, in id order; byte and special pieces score 0, as in Meta's file.
 */
export function bpeSentencePieceModel(vocab: BpeVocabulary): SentencePieceModel {
  const ids = checkVocabulary(vocab);
  const firstRank = new Map<number, number>();
  vocab.merges.forEach(([a, b], rank) => {
    const id = ids.get(a + b) as number;
    if (!firstRank.has(id)) firstRank.set(id, rank);
  });
  const pieces: SentencePiece[] = vocab.pieces.map((piece, id) => {
    const type = pieceType(piece, id);
    const rank = firstRank.get(id);
    const score = type !== PieceType.NORMAL ? 0 : rank !== undefined ? -rank : -(vocab.merges.length + id);
    return { piece, score, type };
  });
  return {
    pieces,
    modelType: 2,
    byteFallback: true,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    normalizerName: 'identity',
    addDummyPrefix: true,
    removeExtraWhitespaces: false,
    escapeWhitespaces: true,
    precompiledCharsmapLength: 0,
  };
}

/** `tokenizer_config.json` for a LLaMA vocabulary (BOS added, EOS not, no clean-up of spaces). */
export function llamaTokenizerConfig(): Record<string, unknown> {
  return {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: 2048,
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
  };
}

/** `special_tokens_map.json` for a LLaMA vocabulary. */
export function llamaSpecialTokensMap(): Record<string, unknown> {
  return { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' };
}
