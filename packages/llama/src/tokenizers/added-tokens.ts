/**
 * Added tokens found whole in text, as the tokenizers library's AddedVocabulary finds them (added_vocabulary.rs):
 * shared by the SentencePiece tokenizer and the tokenizer.json one.
 */
/** A piece of text to encode, or a special or added token found whole in the text. */
export type Segment = { text: string; start: number } | { id: number };

/** A token matched whole in text, and whether the whitespace beside it goes with it. */
export interface WholeToken {
  content: string;
  id: number;
  lstrip: boolean;
  rstrip: boolean;
  /** Found only where no word character is right before or after it. */
  singleWord: boolean;
}

/** Rust's char::is_whitespace, what the tokenizers library strips for lstrip / rstrip. */
const WHITESPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** A word character as the regex crate's Unicode `\w` (UTS #18) has it, what single_word looks for beside a match. */
const WORD = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;

/** The code point that ends at `end` in `text`, or undefined at its start. */
function codePointBefore(text: string, end: number): string | undefined {
  if (end === 0) return undefined;
  const low = text.charCodeAt(end - 1);
  const pair = end >= 2 && low >= 0xdc00 && low <= 0xdfff && text.charCodeAt(end - 2) >= 0xd800 && text.charCodeAt(end - 2) <= 0xdbff;
  return text.slice(pair ? end - 2 : end - 1, end);
}

/** The code point that starts at `start` in `text`, or undefined at its end. */
function codePointAt(text: string, start: number): string | undefined {
  const cp = text.codePointAt(start);
  return cp === undefined ? undefined : String.fromCodePoint(cp);
}

const isWord = (char: string | undefined): boolean => char !== undefined && WORD.test(char);

/**
 * Finds tokens whole in text as the tokenizers library's AddedVocabulary.find_matches does: leftmost first, the
 * longest where several begin, the search going on after the end of each match. A single_word match with a word
 * character right before or after it is dropped whole (a shorter token at its start or one inside it is not looked
 * for). lstrip / rstrip widen a match over the whitespace beside it; the search goes on from the end of the match
 * itself, so a token of spaces is found again inside the spaces that an rstrip took.
 */
export class TokenMatcher {
  /** Tokens by their first UTF-16 unit, longest first. */
  private readonly byFirst = new Map<string, WholeToken[]>();

  constructor(tokens: Iterable<WholeToken>) {
    for (const token of [...tokens].sort((a, b) => b.content.length - a.content.length)) {
      if (token.content.length === 0) continue;
      const first = token.content[0] as string;
      const list = this.byFirst.get(first);
      if (list === undefined) this.byFirst.set(first, [token]);
      else list.push(token);
    }
  }

  /** `text` cut at the tokens; `start` of a piece of text is its offset in `text`. */
  split(text: string): Segment[] {
    if (this.byFirst.size === 0) return text.length === 0 ? [] : [{ text, start: 0 }];
    const out: Segment[] = [];
    let start = 0;
    for (let i = 0; i < text.length; ) {
      const match = this.byFirst.get(text[i] as string)?.find((t) => text.startsWith(t.content, i));
      if (match === undefined) {
        i++;
        continue;
      }
      const end = i + match.content.length;
      if (match.singleWord && (isWord(codePointBefore(text, i)) || isWord(codePointAt(text, end)))) {
        i = end;
        continue;
      }
      let left = i;
      let right = end;
      if (match.lstrip) while (left > start && WHITESPACE.test(text[left - 1] as string)) left--;
      if (match.rstrip) while (right < text.length && WHITESPACE.test(text[right] as string)) right++;
      if (start < left) out.push({ text: text.slice(start, left), start });
      out.push({ id: match.id });
      start = right;
      i = end;
    }
    if (start < text.length) out.push({ text: text.slice(start), start });
    return out;
  }
}
