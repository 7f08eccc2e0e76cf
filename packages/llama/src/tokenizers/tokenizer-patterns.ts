/**
 * The regular expressions of a tokenizer.json (Split pre-tokenizers, Replace normalizers, pre-tokenizers and
 * decoders) that `@huggingface/tokenizers` compiles into JavaScript RegExps, checked at load so that no text can
 * make one backtrack for ever: the patterns of real tokenizers run, and so does any pattern that matches in time
 * linear in the text by its shape; any other is refused, naming the file, the field and the pattern.
 */
import { shown } from '../errors.js';
import { TokenizerError } from './tokenizer-errors.js';

/**
 * Pre-tokenizer patterns of released tokenizers, as their tokenizer.json writes them. Their look-ahead (`\s+(?!\S)`)
 * and adjacent repeats put them outside the checked shape below, but each repeat stops at the next character of
 * another class, so V8 matches them in time linear in the text: scripts/measure-tokenizer-patterns.ts splits
 * 400,000-character runs of spaces, punctuation, digits, letters and marks with each.
 */
export const KNOWN_PATTERNS: ReadonlySet<string> = new Set([
  // GPT-2's ByteLevel regex written out as a Split, with and without its last alternative.
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
  // tiktoken's cl100k_base regex, digits by threes: Llama 3.x.
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // The same with one digit at a time: Qwen2, Qwen2.5, Qwen3.
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // tiktoken's o200k_base regex, which splits cased words: GPT-4o's tokenizer.json.
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // The same without contractions and with one digit at a time: Mistral NeMo's Tekken tokenizer.
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
]);

/**
 * Most ways a checked pattern may try at one position of the text before it fails there: the product of the
 * choices of its bounded repeats (`\p{N}{1,3}` has 3) and the sum over alternatives.
 */
const MAX_TRIES = 10_000;

/** Most times a bounded repeat may repeat (and least times an unbounded one must), each time a step at each position. */
const MAX_COUNT = 1000;

/** A pattern in Oniguruma's syntax as far as the check needs it. */
type PatternNode =
  /** One character: a literal, an escape such as `\s` or `\p{L}`, a class, or `.`. */
  | { kind: 'char' }
  /** A zero-width assertion: `^`, `$`, `\b`, `\B`, `\A`, `\z`, `\Z`, `\G`. */
  | { kind: 'assert' }
  | { kind: 'group'; branches: PatternNode[][] }
  | { kind: 'repeat'; node: PatternNode; min: number; max: number };

/** Why a pattern is refused; the message says what in it needs backtracking or cannot be checked. */
class UncheckedPattern extends Error {}

/** Parses Oniguruma's syntax into {@link PatternNode}s, refusing what needs backtracking to match. */
class PatternParser {
  private i = 0;

  constructor(private readonly src: string) {}

  parse(): PatternNode[][] {
    const branches = this.alternation();
    if (this.i < this.src.length) throw new UncheckedPattern(`an unmatched ")" at offset ${this.i}`);
    return branches;
  }

  private alternation(): PatternNode[][] {
    const branches: PatternNode[][] = [this.sequence()];
    while (this.src[this.i] === '|') {
      this.i++;
      branches.push(this.sequence());
    }
    return branches;
  }

  private sequence(): PatternNode[] {
    const items: PatternNode[] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') items.push(this.quantified(this.item()));
    return items;
  }

  private item(): PatternNode {
    const c = this.src[this.i] as string;
    if (c === '(') return this.group();
    if (c === '[') {
      this.charClass();
      return { kind: 'char' };
    }
    if (c === '\\') return this.escape();
    if (c === '*' || c === '+' || c === '?') throw new UncheckedPattern(`"${c}" at offset ${this.i} repeats nothing`);
    this.i += c.length;
    // A '{' that does not start a repeat is a literal, as in Oniguruma.
    return c === '^' || c === '$' ? { kind: 'assert' } : { kind: 'char' };
  }

  private group(): PatternNode {
    const start = this.i;
    const rest = this.src.slice(start);
    const open = (/^\((?:\?(?::|<[A-Za-z_]\w*>|'[A-Za-z_]\w*'|[im]*(?:-[imx]*)?:))?/.exec(rest) as RegExpExecArray)[0];
    if (/^\(\?(?:<?[=!])/.test(rest)) throw new UncheckedPattern(`a look-around at offset ${start}`);
    if (/^\(\?>/.test(rest)) throw new UncheckedPattern(`an atomic group at offset ${start}`);
    // (?x: would make spaces and '#' comments ignored, so the text would not read as parsed here.
    if (open === '(' && rest[1] === '?') throw new UncheckedPattern(`the group syntax ${JSON.stringify(rest.slice(0, 4))} at offset ${start}`);
    this.i += open.length;
    const branches = this.alternation();
    if (this.src[this.i] !== ')') throw new UncheckedPattern(`the group at offset ${start} is not closed`);
    this.i++;
    return { kind: 'group', branches };
  }

  /** Skips a class, classes nested in it (Oniguruma's `[a[b]]`) and its escapes. */
  private charClass(): void {
    const start = this.i;
    let depth = 0;
    while (this.i < this.src.length) {
      const c = this.src[this.i] as string;
      if (c === '\\') this.i += 2;
      else if (c === '[') {
        depth++;
        this.i++;
        // A ']' first in a class (after an optional '^') is a literal.
        if (this.src[this.i] === '^') this.i++;
        if (this.src[this.i] === ']') this.i++;
      } else {
        this.i++;
        if (c === ']' && --depth === 0) return;
      }
    }
    throw new UncheckedPattern(`the class at offset ${start} is not closed`);
  }

  private escape(): PatternNode {
    const start = this.i;
    const c = this.src[this.i + 1];
    if (c === undefined) throw new UncheckedPattern('a "\\" at the end');
    this.i += 2;
    if (/[1-9k]/.test(c)) throw new UncheckedPattern(`a backreference at offset ${start}`);
    if (/[bBAzZG]/.test(c)) return { kind: 'assert' };
    if (/[RXKyYg]/.test(c)) throw new UncheckedPattern(`the escape \\${c} at offset ${start}`);
    if (/[pPxo]/.test(c) && this.src[this.i] === '{') {
      const end = this.src.indexOf('}', this.i);
      if (end < 0) throw new UncheckedPattern(`the escape at offset ${start} is not closed`);
      this.i = end + 1;
    } else if (c === 'x') {
      this.i += /^[0-9A-Fa-f]{0,2}/.exec(this.src.slice(this.i))![0].length;
    } else if (c === 'u') {
      this.i += 4;
    } else if (c === 'c') {
      this.i += 1;
    }
    return { kind: 'char' };
  }

  /** `node` with the repeats written after it (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, `{,m}`, each perhaps lazy). */
  private quantified(node: PatternNode): PatternNode {
    let out = node;
    for (;;) {
      const rest = this.src.slice(this.i);
      let min: number;
      let max: number;
      const brace = /^\{(\d*)(,?)(\d*)\}/.exec(rest);
      if (rest[0] === '*') [min, max] = [0, Infinity];
      else if (rest[0] === '+') [min, max] = [1, Infinity];
      else if (rest[0] === '?') [min, max] = [0, 1];
      else if (brace !== null && (brace[1] !== '' || brace[3] !== '')) {
        min = brace[1] === '' ? 0 : Number(brace[1]);
        max = brace[2] === '' ? min : brace[3] === '' ? Infinity : Number(brace[3]);
      } else return out;
      if (max !== Infinity ? max > MAX_COUNT : min > MAX_COUNT) throw new UncheckedPattern(`a repeat of more than ${MAX_COUNT} at offset ${this.i}`);
      this.i += brace !== null ? brace[0].length : 1;
      // A lazy repeat tries the same ways in another order; '+' after '*', '+' or '?' is possessive in Oniguruma.
      if (this.src[this.i] === '?') this.i++;
      else if (this.src[this.i] === '+' && rest[0] !== '{') throw new UncheckedPattern(`a possessive repeat at offset ${this.i - 1}`);
      out = { kind: 'repeat', node: out, min, max };
    }
  }
}

/** Ways `items` may try at one position, every repeat in them bounded. */
function triesOfSequence(items: readonly PatternNode[]): number {
  return items.reduce((n, item) => n * triesOf(item), 1);
}

function triesOf(node: PatternNode): number {
  switch (node.kind) {
    case 'char':
    case 'assert':
      return 1;
    case 'group':
      return node.branches.reduce((n, b) => n + triesOfSequence(b), 0);
    case 'repeat': {
      if (node.max === Infinity) throw new UncheckedPattern('a repeat without bound ("*", "+" or "{n,}") that is not the last item of its alternative, or not of one character');
      const inner = triesOf(node.node);
      let n = 0;
      for (let k = node.min; k <= node.max && n <= MAX_TRIES; k++) n += inner ** k;
      return n;
    }
  }
}

/**
 * Throws {@link UncheckedPattern} unless `pattern` matches in time linear in the text: each alternative of it is
 * a sequence of characters, assertions and bounded repeats (at most {@link MAX_TRIES} ways in all), optionally
 * ended by one character repeated without bound. Such an alternative either fails within its bounded start or
 * reaches its last repeat, which takes the longest run and succeeds; the text it took is not tried again.
 */
function checkLinear(pattern: string): void {
  let tries = 0;
  for (const branch of new PatternParser(pattern).parse()) {
    const last = branch[branch.length - 1];
    const openEnded = last?.kind === 'repeat' && last.max === Infinity && last.node.kind === 'char';
    tries += triesOfSequence(openEnded ? branch.slice(0, -1) : branch);
    if (tries > MAX_TRIES) throw new UncheckedPattern(`more than ${MAX_TRIES} ways to try at one position of the text`);
  }
}

/** Deepest nesting of a normalizer, pre_tokenizer or decoder looked into: a tokenizer's nest a few Sequences deep. */
const MAX_DEPTH = 100;

/**
 * Where `node` holds a `{ "Regex": ... }` pattern, with its JSON path. A node nested deeper than MAX_DEPTH is refused
 * naming `file`, where walking on would overflow the stack (JSON.parse reads a list 100000 deep).
 */
function* regexPatterns(node: unknown, path: string, file: string, depth = 0): Generator<{ path: string; pattern: unknown }> {
  if (typeof node !== 'object' || node === null) return;
  if (depth > MAX_DEPTH) {
    const field = /^\w+/.exec(path)?.[0] ?? path;
    throw new TokenizerError(`${file}: ${field} nests lists or objects more than ${MAX_DEPTH} levels deep, where a tokenizer's nests a few; replace the file with the model's original tokenizer.json`, { file });
  }
  if (Array.isArray(node)) {
    for (const [i, child] of node.entries()) yield* regexPatterns(child, `${path}[${i}]`, file, depth + 1);
    return;
  }
  for (const [key, child] of Object.entries(node)) {
    if (key === 'Regex') yield { path: `${path}.Regex`, pattern: child };
    else yield* regexPatterns(child, `${path}.${key}`, file, depth + 1);
  }
}

/**
 * Checks every regular expression of a parsed tokenizer.json's normalizer, pre_tokenizer and decoder (the parts
 * whose patterns @huggingface/tokenizers runs on text) before any is compiled.
 * @throws TokenizerError naming `file`, the field, the pattern and what in it is not known to match in linear time.
 */
export function checkTokenizerPatterns(json: Readonly<Record<string, unknown>>, file: string): void {
  for (const field of ['normalizer', 'pre_tokenizer', 'decoder']) {
    for (const { path, pattern } of regexPatterns(json[field], field, file)) {
      if (typeof pattern !== 'string') {
        throw new TokenizerError(`${file}: ${path} is ${shown(pattern)}, expected a string; replace the file with the model's original tokenizer.json`, { file });
      }
      if (KNOWN_PATTERNS.has(pattern)) continue;
      try {
        checkLinear(pattern);
      } catch (e) {
        if (!(e instanceof UncheckedPattern)) throw e;
        throw new TokenizerError(
          `${file}: ${path} is ${JSON.stringify(pattern)}, a regular expression not known to match in time linear in the text (it has ${e.message}); ` +
            `one that backtracks for a time exponential or polynomial in the text would hang whoever tokenizes a crafted text with it. ` +
            `Patterns that run are those of GPT-2, Llama 3, Qwen2, GPT-4o and Mistral NeMo tokenizers, and patterns whose every alternative has bounded length but for one repeated character or class at its end, such as " ?\\\\p{L}+". ` +
            `Where the file is not the model's original tokenizer.json, replace it with the original. Where it is the original (such as DeepSeek LLM's) and you trust where it comes from, ` +
            `load it with --trust-tokenizer-patterns (the option trustTokenizerPatterns), which runs its patterns as written: a text crafted against this one (in a prompt or in training data) could then keep tokenizing for hours`,
          { file },
        );
      }
    }
  }
}
