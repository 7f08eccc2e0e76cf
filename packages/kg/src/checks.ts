// Checks a generated question/answer must pass before it is kept: non-empty
// fields, grounding in the sampled knowledge, and no near-duplicate question.

import type { KnowledgeSample } from './sample.js';
import type { QaPair } from './templates.js';

/** Why a generated instance was not kept. */
export type DropReason =
  | 'request-failed'
  | 'invalid-json'
  | 'empty-field'
  | 'missing-entity'
  | 'missing-knowledge'
  | 'near-duplicate';

/** Every drop reason, in report order. */
export const DROP_REASONS: readonly DropReason[] = ['request-failed', 'invalid-json', 'empty-field', 'missing-entity', 'missing-knowledge', 'near-duplicate'];

/**
 * Normalise text for comparison: NFKC, lower case, punctuation, symbols and
 * whitespace removed.
 * @example normalizeText('高血压  吃什么药？') // '高血压吃什么药'
 */
export function normalizeText(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/[\p{P}\p{S}\p{Z}\s]+/gu, '');
}

/** Character n-grams of normalised text (the whole text when it is shorter than n). */
export function charNgrams(text: string, n: number): Set<string> {
  const chars = [...normalizeText(text)];
  const out = new Set<string>();
  if (chars.length === 0) return out;
  if (chars.length < n) {
    out.add(chars.join(''));
    return out;
  }
  for (let i = 0; i + n <= chars.length; i++) out.add(chars.slice(i, i + n).join(''));
  return out;
}

function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let inter = 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const g of small) if (large.has(g)) inter++;
  return inter / (a.size + b.size - inter);
}

/**
 * Similarity of two texts: Jaccard index of their normalised character n-gram sets (n = 3 by default).
 * @example ngramSimilarity('高血压吃什么药？', '高血压吃什么药') // 1
 */
export function ngramSimilarity(a: string, b: string, n = 3): number {
  return jaccard(charNgrams(a, n), charNgrams(b, n));
}

/**
 * Kept questions, indexed by n-gram so that a new question is compared only
 * with questions sharing at least one n-gram.
 */
export class NearDuplicateIndex {
  readonly #threshold: number;
  readonly #n: number;
  readonly #grams: Set<string>[] = [];
  readonly #byGram = new Map<string, number[]>();

  /** @param threshold similarity above which a question counts as a near duplicate. */
  constructor(threshold: number, n = 3) {
    this.#threshold = threshold;
    this.#n = n;
  }

  /** Number of questions held. */
  get size(): number {
    return this.#grams.length;
  }

  /** The highest similarity of `question` to any held question (0 when none share an n-gram). */
  maxSimilarity(question: string): number {
    const grams = charNgrams(question, this.#n);
    const seen = new Set<number>();
    let best = 0;
    for (const g of grams) {
      for (const id of this.#byGram.get(g) ?? []) {
        if (seen.has(id)) continue;
        seen.add(id);
        best = Math.max(best, jaccard(grams, this.#grams[id] as Set<string>));
      }
    }
    return best;
  }

  /** True when `question` is more similar than the threshold to a held question. */
  isNearDuplicate(question: string): boolean {
    return this.maxSimilarity(question) > this.#threshold;
  }

  /** Hold `question` for later comparisons. */
  add(question: string): void {
    const grams = charNgrams(question, this.#n);
    const id = this.#grams.length;
    this.#grams.push(grams);
    for (const g of grams) {
      const list = this.#byGram.get(g);
      if (list === undefined) this.#byGram.set(g, [id]);
      else list.push(id);
    }
  }
}

/** Values longer than this (after normalisation) may be mentioned in part; see {@link mentions}. */
export const LONG_VALUE_CHARS = 12;

/**
 * Whether `answer` mentions `value`: the normalised value occurs in the
 * normalised answer, or, for values longer than {@link LONG_VALUE_CHARS}
 * characters (descriptions, causes), at least half of the value's character
 * bigrams occur in the answer.
 * @example mentions('可选用氨氯地平。', '氨氯地平') // true
 */
export function mentions(answer: string, value: string): boolean {
  const a = normalizeText(answer);
  const v = normalizeText(value);
  if (v === '') return false;
  if (a.includes(v)) return true;
  if ([...v].length <= LONG_VALUE_CHARS) return false;
  const grams = charNgrams(v, 2);
  const answerGrams = charNgrams(a, 2);
  let hit = 0;
  for (const g of grams) if (answerGrams.has(g)) hit++;
  return hit / grams.size >= 0.5;
}

/**
 * Grounding checks of one pair against its sample (duplicates are checked separately):
 * both fields non-empty, the answer names the entity and at least one sampled value.
 * Returns the drop reason, or undefined when the pair passes.
 */
export function checkGrounding(pair: QaPair, sample: KnowledgeSample): DropReason | undefined {
  if (pair.question.trim() === '' || pair.answer.trim() === '') return 'empty-field';
  if (!mentions(pair.answer, sample.entity.name)) return 'missing-entity';
  for (const attribute of sample.attributes) {
    for (const value of sample.entity.attributes[attribute] ?? []) {
      if (mentions(pair.answer, value)) return undefined;
    }
  }
  return 'missing-knowledge';
}
