// What a client may see of the generated text: cut at the stop string that ends it (or after it, with vLLM's
// include_stop_str_in_output), stripped for chat as HuaTuo's get_response strips, and while streaming, less the
// characters vLLM holds back while a stop string may still complete.

import { findStopString } from '@huatuo/llama';
import { pythonStrip } from './prompt.js';

/** How one request's text is shown. */
export interface TextView {
  /** The request's stop strings, in its order. */
  readonly stops: readonly string[];
  /** vLLM's include_stop_str_in_output: the stop string that ends the text is kept in it. */
  readonly includeStop: boolean;
  /** Stripped as HuaTuo's get_response strips the reply (chats under a HuaTuo template). */
  readonly strip: boolean;
  /** {@link heldBackChars} of the above, counted once per request: stop strings may be a megabyte long. */
  readonly heldBack: number;
}

/** The view of a request's text, its held-back characters counted once, as vLLM's SamplingParams counts them. */
export function textView(stops: readonly string[], includeStop: boolean, strip: boolean): TextView {
  return { stops, includeStop, strip, heldBack: heldBackChars({ stops, includeStop }) };
}

/** Index where the stop string that ends `text` begins (the first of `stops` it holds, vLLM's order: findStopString), or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  return findStopString(text, stops)?.at ?? -1;
}

/**
 * Characters (Python's len: code points) a stream holds back until its choice ends, as vLLM's
 * SamplingParams.output_text_buffer_length: the longest stop string's length less one, whatever the text ends
 * with; none without stop strings, or when they are kept in the text (include_stop_str_in_output).
 */
export function heldBackChars(view: Pick<TextView, 'stops' | 'includeStop'>): number {
  if (view.includeStop) return 0;
  return Math.max(0, ...view.stops.map((s) => [...s].length - 1));
}

/**
 * Turns the raw generated text into what the client sees: cut where the stop string that ends it begins (where
 * it ends, with `includeStop`, as vLLM's StopChecker truncates) and, for chat, stripped as HuaTuo's get_response
 * strips. Not `final` (streaming, the choice going on): less its last {@link heldBackChars} characters, as vLLM's
 * Sequence.get_output_text_to_return returns an unfinished sequence's text.
 */
export function visibleText(raw: string, view: TextView, final: boolean): string {
  const stop = findStopString(raw, view.stops);
  const text = stop === null ? raw : raw.slice(0, stop.at + (view.includeStop ? stop.stop.length : 0));
  if (final || stop !== null) return view.strip ? pythonStrip(text) : text;
  const held = view.heldBack;
  const shown = held === 0 ? text : [...text].slice(0, -held).join('');
  return view.strip ? stripEnd(stripStart(shown)) : shown;
}

/** Python's str.lstrip(). */
function stripStart(text: string): string {
  return pythonStrip(`${text}.`).slice(0, -1);
}

/** Python's str.rstrip(). */
function stripEnd(text: string): string {
  return pythonStrip(`.${text}`).slice(1);
}
