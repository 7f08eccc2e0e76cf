// Which stop string ends a generated text, as vLLM's V0 engine decides it.

/** The stop string that ends `text` and where the text is cut, or null. */
export interface StopMatch {
  readonly stop: string;
  /** Index of the stop string in the text: the text kept is text.slice(0, at). */
  readonly at: number;
}

/**
 * The stop string that ends `text`, as vLLM's StopChecker._check_stop_strings picks it after each token: the
 * first of `stops`, in the request's order, that the text contains, cut at its first occurrence (not the one
 * that starts first in the text). The text before this token held none (generation would have ended there), so
 * two can only be found together when one token completes both.
 */
export function findStopString(text: string, stops: readonly string[]): StopMatch | null {
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at >= 0) return { stop, at };
  }
  return null;
}
