/**
 * Measures how long @huggingface/tokenizers takes to split adversarial texts with each pre-tokenizer pattern that
 * tokenizer-patterns.ts runs without checking its shape (KNOWN_PATTERNS), or with the patterns given: runs of one
 * character or pair (spaces, punctuation, digits, letters of each case, marks, newlines) of `length` characters,
 * each alone and followed by a character of another class. A pattern that backtracks shows as a time growing with
 * the square of the length or faster; a pattern joins KNOWN_PATTERNS only with a worst time well under a second.
 *
 *   node --conditions=source --import tsx scripts/measure-tokenizer-patterns.ts [--length 400000] [pattern...]
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { KNOWN_PATTERNS } from '@huatuo/llama/internal';

const RUNS: Record<string, string> = {
  spaces: ' ', tabs: '\t', newlines: '\n', 'space-newline': ' \n', 'return-space': '\r ', punctuation: '!', slashes: '/',
  apostrophes: "'", 'space-bang': ' !', digits: '7', lowercase: 'a', uppercase: 'A', 'upper-lower': 'Aa', titlecase: 'ǅ',
  han: '中', modifier: 'ʰ', mark: '\u0301', 'upper-mark': 'A\u0301',
};
const ENDS = ['', 'x', 'A', '!', ' ', '1', '\n'];

/** The pre-tokenizer @huggingface/tokenizers builds for a Split on `pattern`, as HfTokenizer.fromJson has it build one. */
function splitter(pattern: string): (text: string) => string[] {
  const tokenizer = new Tokenizer(
    { normalizer: null, pre_tokenizer: { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, post_processor: null, decoder: null, added_tokens: [], model: { type: 'BPE', vocab: { a: 0 }, merges: [] } } as never,
    {},
  );
  const pre = (tokenizer as unknown as { pre_tokenizer: { pre_tokenize_text(text: string): string[] } }).pre_tokenizer;
  return (text) => pre.pre_tokenize_text(text);
}

const args = process.argv.slice(2);
const at = args.indexOf('--length');
const length = at < 0 ? 400_000 : Number(args.splice(at, 2)[1]);
const patterns = args.length > 0 ? args : [...KNOWN_PATTERNS];
for (const pattern of patterns) {
  const split = splitter(pattern);
  let worst = { ms: 0, text: '' };
  for (const [run, unit] of Object.entries(RUNS)) {
    for (const end of ENDS) {
      const text = unit.repeat(Math.ceil(length / unit.length)).slice(0, length) + end;
      const start = performance.now();
      const pieces = split(text);
      const ms = performance.now() - start;
      if (pieces.join('') !== text) throw new Error(`${pattern}: the pieces of ${run} do not make up the text`);
      if (ms > worst.ms) worst = { ms, text: `${run}${end === '' ? '' : ` then ${JSON.stringify(end)}`}` };
    }
  }
  console.log(`${worst.ms.toFixed(0).padStart(6)} ms worst (${worst.text}), ${length} characters: ${pattern}`);
}
