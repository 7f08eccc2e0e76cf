// tokenizer.json files for the checks of a tokenizer's regular expressions: one id per character of a few
// characters (BPE) with the components a check needs, and one whose pre-tokenizer splits as DeepSeek LLM's does,
// on \s+$ among others, which is refused at load unless its patterns are trusted.

const CHARS = ['a', 'b', 'x', 'y', '!', ' ', '(', ')', '+', '['];

/** A tokenizer.json of one id per character of a, b, x, y, !, space, (, ), +, [ (BPE without merges) with the given components. */
export function tokenizerJson(parts: Record<string, unknown>): Record<string, unknown> {
  return {
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    added_tokens: [],
    ...parts,
    model: { type: 'BPE', vocab: Object.fromEntries(CHARS.map((c, id) => [c, id])), merges: [], unk_token: null },
  };
}

/** tokenizer_config.json of those tokenizers: '!' ends a sequence, and there is no BOS. */
export const CONFIG = { eos_token: '!' };

/** A Split pre-tokenizer on `pattern`, each match a piece of its own. */
export const split = (pattern: string) => ({ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false });

/**
 * A tokenizer.json whose pre-tokenizer is DeepSeek LLM's Sequence of Splits, one of them \s+$ (its fourth), which
 * backtracks for a time quadratic in a run of spaces followed by another character; its letter and punctuation
 * classes are shortened here. Merges make the ids depend on where the pre-tokenizer splits: "x " is one id (10)
 * unless \s+$ splits x from the spaces after it. 15 pieces.
 */
export function deepSeekStyleTokenizerJson(): Record<string, unknown> {
  const deepSeekStyle = {
    type: 'Sequence',
    pretokenizers: [split('[\\r\\n]'), split('\\s?[ab]+'), split('\\s?[!-/:-@\\[-`{-~]+'), split('\\s+$'), split('\\p{N}+')],
  };
  const base = tokenizerJson({ pre_tokenizer: deepSeekStyle });
  const model = base.model as { vocab: Record<string, number>; merges: [string, string][] };
  Object.assign(model.vocab, { 'x ': 10, ab: 11, '  ': 12, ' a': 13, ' ab': 14 });
  model.merges = [['x', ' '], ['a', 'b'], [' ', ' '], [' ', 'a'], [' ', 'ab']];
  return base;
}
