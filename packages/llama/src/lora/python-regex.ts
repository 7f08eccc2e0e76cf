// Python regular expressions (PEFT's target_modules, rank_pattern keys...) run as JavaScript RegExps:
// named groups and the \A, \Z anchors rewritten, anything JavaScript cannot compile refused by name. Browser-safe.

import { AdapterError } from '../errors.js';

/**
 * `pattern` (Python `re` syntax) placed in `wrap` (anchors, groups) as a RegExp; `flags` as RegExp's ('y'
 * anchors every alternative at lastIndex, as Python's re.match does). `where` and `field` name the source in errors.
 */
export function compilePythonRegex(pattern: string, where: string, field: string, wrap: (p: string) => string = (p) => p, flags = ''): RegExp {
  // Python's \A and \Z anchor the start and end; JavaScript reads them as the letters A and Z (escaped backslashes stay).
  const anchored = pattern.replace(/\\([\s\S])/g, (escape, c: string) => (c === 'A' ? '^' : c === 'Z' ? '$' : escape));
  const js = anchored.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>');
  try {
    return new RegExp(wrap(js), flags);
  } catch (err) {
    throw new AdapterError(where, `${field} ${JSON.stringify(pattern)} is not a regular expression this library can run (${err instanceof Error ? err.message : String(err)})`);
  }
}
