// Python regular expressions (PEFT's target_modules, rank_pattern keys...) matched by RE2JS in time linear in
// the name, so that a pattern from a downloaded adapter_config.json such as (a+)+b cannot hang the process as a
// JavaScript RegExp would. RE2's syntax is Python's but for what needs backtracking: look-aheads, backreferences,
// atomic groups and possessive repeats are refused by name; look-behinds run. Browser-safe.

import { RE2JS } from 're2js';
import { AdapterError } from '../errors.js';

/** A compiled Python regular expression, matched as Python's `re` matches it. */
export interface PythonRegex {
  /** Python's `re.fullmatch(pattern, s) is not None`. */
  fullMatch(s: string): boolean;
  /** Python's `re.match(pattern, s)`: the groups of a match at the start of `s` (0 the whole match, null where a group took no part), or null. */
  matchStart(s: string): (string | null)[] | null;
}

/**
 * The syntax of Python's `re` that RE2 writes otherwise: `\Z` (the end of the string, RE2's `\z`) and `{,n}`
 * (RE2 reads it as text). Escapes and character classes are copied as they are.
 */
function toRe2Syntax(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) {
      const next = pattern[++i]!;
      out += !inClass && next === 'Z' ? '\\z' : `\\${next}`;
    } else if (inClass) {
      // A ']' first in a class (after an optional '^') is a literal, as in Python.
      if (c === ']' && !/\[\^?$/.test(out)) inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
    } else if (c === '{' && /^\{,\d+\}/.test(pattern.slice(i))) {
      out += '{0';
    } else {
      out += c;
    }
  }
  return out;
}

/** What Python's syntax a refused pattern uses, from RE2JS's message, with the way to write it here. */
function unsupported(message: string): string {
  if (/`\(\?[=!]/.test(message)) return 'a look-ahead ((?=...) or (?!...)), which needs backtracking: write the condition without it, e.g. leave names out with exclude_modules';
  if (/`\\[1-9]|`\(\?P`/.test(message)) return 'a backreference (\\1 or (?P=name)), which needs backtracking: write the pattern without it';
  if (/`\(\?>|`[*+?}]\+/.test(message)) return 'an atomic group or a possessive repeat, which only limit backtracking: drop the ?> or the second +';
  return 'write it in the syntax of Python\'s re that RE2 shares (groups, alternation, classes, repeats, anchors, look-behinds)';
}

/**
 * `pattern` (Python `re` syntax) placed in `wrap` (anchors, groups), compiled to match in linear time.
 * `where` and `field` name the source in errors.
 * @throws AdapterError naming `where`, `field` and the pattern when it does not compile or needs backtracking.
 * @example
 * compilePythonRegex('.*\\.(q|v)_proj', 'adapter/adapter_config.json', 'target_modules').fullMatch('model.layers.0.self_attn.q_proj'); // true
 */
export function compilePythonRegex(pattern: string, where: string, field: string, wrap: (p: string) => string = (p) => p): PythonRegex {
  let re: RE2JS;
  try {
    re = RE2JS.compile(wrap(toRe2Syntax(pattern)), RE2JS.LOOKBEHINDS);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new AdapterError(
      where,
      `${field} ${JSON.stringify(pattern)} is not a regular expression this library can run (${message}); patterns are matched in linear time, so that no pattern can hang the process; ${unsupported(message)}`,
    );
  }
  return {
    fullMatch: (s) => re.matches(s),
    matchStart(s) {
      const m = re.matcher(s);
      if (!m.lookingAt()) return null;
      return Array.from({ length: m.groupCount() + 1 }, (_, i) => m.group(i));
    },
  };
}
