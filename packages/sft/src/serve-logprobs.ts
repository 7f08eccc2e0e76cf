// Log probabilities in OpenAI's shapes, as vLLM's server writes them: chat's choices[].logprobs.content
// ({token, logprob, bytes, top_logprobs}) and legacy completions' {tokens, token_logprobs, top_logprobs,
// text_offset}, each token's own entry first and then the most likely tokens of its step; and vLLM's own
// prompt_logprobs of completion choices.

import type { PromptTokenLogprobs, Tokenizer } from '@huatuo/llama';
import type { RowLogprobs, TokenLogprob } from '@huatuo/tensor';

/** The most top_logprobs (chat) or logprobs (completions) a request may ask for: vLLM's default max_logprobs. */
export const MAX_LOGPROBS = 20;

/** The log-probability vLLM writes for -inf (JSON has no infinities). */
const FLOOR = -9999;

/**
 * A token's text as vLLM's convert_ids_list_to_tokens gives it: the token decoded alone, special tokens
 * kept, with the leading spaces that SentencePiece's decode drops restored from its piece's "▁" markers.
 */
export function tokenText(tokenizer: Tokenizer, id: number): string {
  const text = tokenizer.decode([id]);
  const markers = /^▁*/.exec(tokenizer.idToPiece(id))![0].length;
  const spaces = /^ */.exec(text)![0].length;
  return markers > spaces ? ' '.repeat(markers - spaces) + text : text;
}

/** A step's entries as vLLM orders them: the token's own first, then the most likely ones not already listed. */
function stepEntries(row: RowLogprobs): TokenLogprob[] {
  return [{ id: row.id, logprob: row.logprob }, ...row.top.filter((e) => e.id !== row.id)];
}

/** Chat's choices[].logprobs for the generated tokens; `top` entries of each step in top_logprobs, the token's own first (vLLM's order). */
export function chatLogprobs(tokenizer: Tokenizer, rows: readonly RowLogprobs[], top: number) {
  const entry = (e: TokenLogprob) => {
    const token = tokenText(tokenizer, e.id);
    return { token, logprob: Math.max(e.logprob, FLOOR), bytes: [...Buffer.from(token, 'utf8')] };
  };
  return {
    content: rows.map((row) => ({ ...entry(row), top_logprobs: stepEntries(row).slice(0, top).map(entry) })),
  };
}

/**
 * Legacy completions' logprobs for `ids` (echoed prompt tokens, then generated ones) with their `rows`
 * (null for the first prompt token, which nothing predicts): each top_logprobs a map of the token's own
 * text and then the `top` most likely tokens' texts to their log-probabilities (OpenAI: up to logprobs + 1
 * entries), text_offset the characters before each token counting from `offset`.
 */
export function completionLogprobs(tokenizer: Tokenizer, ids: readonly number[], rows: readonly (RowLogprobs | null)[], top: number, offset: number) {
  const tokens: string[] = [];
  const tokenLogprobs: (number | null)[] = [];
  const topLogprobs: (Record<string, number> | null)[] = [];
  const textOffset: number[] = [];
  ids.forEach((id, i) => {
    const token = tokenText(tokenizer, id);
    const row = rows[i] ?? null;
    textOffset.push(offset);
    // Python's len: code points.
    offset += [...token].length;
    tokens.push(token);
    if (row === null) {
      tokenLogprobs.push(null);
      topLogprobs.push(null);
      return;
    }
    tokenLogprobs.push(Math.max(row.logprob, FLOOR));
    const map = new Map<string, number>();
    for (const e of stepEntries(row).slice(0, top + 1)) map.set(tokenText(tokenizer, e.id), Math.max(e.logprob, FLOOR));
    topLogprobs.push(Object.fromEntries(map));
  });
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: topLogprobs, text_offset: textOffset };
}

/**
 * vLLM's prompt_logprobs of a completion choice: null for the first prompt token, then for each a map of token
 * ids to {logprob, rank, decoded_token}: the prompt token's own, with its rank in the vocabulary, and the `top`
 * most likely, ranked 1 to `top`; a prompt token among them takes its place there, as vLLM's dict, written
 * token first and then the top ones, ends with it. (JSON.stringify writes integer keys in ascending order,
 * where vLLM's text lists the prompt token first.)
 */
export function promptLogprobsField(tokenizer: Tokenizer, rows: readonly (PromptTokenLogprobs | null)[], top: number) {
  return rows.map((row) => {
    if (row === null) return null;
    const entry = (id: number, logprob: number, rank: number | null) => ({ logprob: Math.max(logprob, FLOOR), rank, decoded_token: tokenText(tokenizer, id) });
    const map: Record<string, ReturnType<typeof entry>> = { [row.id]: entry(row.id, row.logprob, row.rank ?? null) };
    row.top.slice(0, top).forEach((e, j) => (map[e.id] = entry(e.id, e.logprob, j + 1)));
    return map;
  });
}
