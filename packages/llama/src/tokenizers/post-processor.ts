/**
 * The special tokens that a tokenizer.json's `post_processor` puts around the ids of one text
 * when transformers' fast tokenizers encode with `add_special_tokens=True` (the Rust
 * `tokenizers` library's processors, single-sequence case).
 */
import { shown } from '../errors.js';
import { TokenizerError } from './tokenizer-errors.js';

/** Ids put before and after the ids of the text. */
export interface SpecialTokensAround {
  prefix: number[];
  suffix: number[];
}

const NONE: SpecialTokensAround = { prefix: [], suffix: [] };

/**
 * The ids `post_processor` adds around one sequence: TemplateProcessing's `single` template
 * (the ids of each `SpecialToken` before and after `$A`), RobertaProcessing and BertProcessing's
 * `cls` ... `sep`, a Sequence's processors applied in turn, and none for ByteLevel (it only trims
 * offsets) or a null `post_processor`. `file` names tokenizer.json in errors.
 *
 * @example
 * specialTokensAround({ type: 'ByteLevel', trim_offsets: false }, 'tokenizer.json'); // { prefix: [], suffix: [] }
 */
export function specialTokensAround(processor: unknown, file: string): SpecialTokensAround {
  if (processor === undefined || processor === null) return NONE;
  const bad = (what: string): TokenizerError =>
    new TokenizerError(`${file}: post_processor ${what}; replace the file with the model's original tokenizer.json`, { file });
  if (typeof processor !== 'object' || Array.isArray(processor)) throw bad(`is ${shown(processor)}, expected an object with a "type"`);
  const p = processor as Record<string, unknown>;
  switch (p.type) {
    case 'ByteLevel':
      return NONE;
    case 'TemplateProcessing':
      return templateSingle(p, bad);
    case 'RobertaProcessing':
    case 'BertProcessing': {
      const idOf = (key: string): number => {
        const pair = p[key];
        if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !Number.isInteger(pair[1])) {
          throw bad(`of type ${p.type} has ${key} ${shown(pair)}, expected [token, id]`);
        }
        return pair[1] as number;
      };
      return { prefix: [idOf('cls')], suffix: [idOf('sep')] };
    }
    case 'Sequence': {
      if (!Array.isArray(p.processors)) throw bad(`of type Sequence has processors ${shown(p.processors)}, expected a list`);
      const prefix: number[] = [];
      const suffix: number[] = [];
      for (const inner of p.processors) {
        const around = specialTokensAround(inner, file);
        prefix.unshift(...around.prefix);
        suffix.push(...around.suffix);
      }
      return { prefix, suffix };
    }
    default:
      throw new TokenizerError(
        `${file}: post_processor of type ${shown(p.type)} is not supported (TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence or null are); replace the file with the model's original tokenizer.json`,
        { file },
      );
  }
}

function templateSingle(p: Record<string, unknown>, bad: (what: string) => TokenizerError): SpecialTokensAround {
  if (!Array.isArray(p.single)) throw bad(`of type TemplateProcessing has single ${shown(p.single)}, expected a list of pieces`);
  const specials = (typeof p.special_tokens === 'object' && p.special_tokens !== null ? p.special_tokens : {}) as Record<string, unknown>;
  const around: SpecialTokensAround = { prefix: [], suffix: [] };
  let seenSequence = false;
  for (const piece of p.single as unknown[]) {
    const entry = piece as { Sequence?: unknown; SpecialToken?: { id?: unknown } } | null;
    if (entry?.Sequence !== undefined) {
      seenSequence = true;
      continue;
    }
    const name = entry?.SpecialToken?.id;
    if (typeof name !== 'string') throw bad(`of type TemplateProcessing has the piece ${shown(piece)} in single, expected { "Sequence": ... } or { "SpecialToken": { "id": ... } }`);
    const ids = (specials[name] as { ids?: unknown } | undefined)?.ids;
    if (!Array.isArray(ids) || !ids.every((id) => Number.isInteger(id) && id >= 0)) {
      throw bad(`of type TemplateProcessing uses "${name}" in single, but its special_tokens give it no ids`);
    }
    (seenSequence ? around.suffix : around.prefix).push(...(ids as number[]));
  }
  return around;
}
