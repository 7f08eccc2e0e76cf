// Estimates behind the server's refusals: the most characters a prompt can have and still fit
// the context, and how long a client refused for a full queue should wait (Retry-After).

import type { Tokenizer } from '@huatuo/llama';

/**
 * Characters in the longest piece of the vocabulary (at least 1). A text of n characters is at
 * least n / this many tokens, so a prompt longer than context × this cannot fit the context,
 * and can be refused without tokenizing it (for normalizers that drop no characters, as LLaMA's).
 */
export function longestPieceChars(tokenizer: Tokenizer): number {
  let longest = 1;
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    let piece: string;
    try {
      piece = tokenizer.idToPiece(id);
    } catch {
      continue;
    }
    const chars = [...piece].length;
    if (chars > longest) longest = chars;
  }
  return longest;
}

/** The generation running now: how long it has run, its tokens so far and the most it may make. */
export interface RunningEstimate {
  elapsedSeconds: number;
  tokens: number;
  maxTokens: number;
}

/**
 * Seconds a client refused for a full queue should wait before retrying: the time until the
 * running generation ends, which frees a place in the queue. Its remaining tokens (up to its
 * max_tokens) are timed at its own rate so far, or at the mean rate of `recentRates` (seconds
 * per token of recent generations) before its first token. At least 1; 1 when nothing is known.
 *
 * @example retryAfterSeconds({ elapsedSeconds: 2, tokens: 20, maxTokens: 50 }, []) === 3
 */
export function retryAfterSeconds(running: RunningEstimate | null, recentRates: readonly number[]): number {
  if (running === null) return 1;
  const remaining = Math.max(0, running.maxTokens - running.tokens);
  if (running.tokens > 0) return Math.max(1, Math.ceil((remaining * running.elapsedSeconds) / running.tokens));
  if (recentRates.length === 0) return 1;
  const rate = recentRates.reduce((a, b) => a + b, 0) / recentRates.length;
  return Math.max(1, Math.ceil(remaining * rate - running.elapsedSeconds));
}
