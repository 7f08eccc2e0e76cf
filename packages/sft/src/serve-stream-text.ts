// What a client may see of the generated text: cut at the stop string that ends it, stripped for chat
// as HuaTuo's get_response strips, and while streaming, held back where a stop may still begin.

import { findStopString } from '@huatuo/llama';
import { pythonStrip } from './prompt.js';

/** Index where the stop string that ends `text` begins (the first of `stops` it holds, vLLM's order: findStopString), or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  return findStopString(text, stops)?.at ?? -1;
}

/** Length of the longest suffix of `text` that begins some stop string (it may turn into one). */
function heldStopPrefix(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > held; k--) {
      if (text.endsWith(s.slice(0, k))) {
        held = k;
        break;
      }
    }
  }
  return held;
}

/**
 * Turns the raw generated text into what the client sees: cut at the stop string that ends it and,
 * for chat, stripped as HuaTuo's get_response strips. `safe` is the part that no later token
 * can change.
 */
export function visibleText(raw: string, stops: readonly string[], strip: boolean, final: boolean): string {
  const stop = firstStop(raw, stops);
  const text = stop >= 0 ? raw.slice(0, stop) : raw;
  if (final || stop >= 0) return strip ? pythonStrip(text) : text;
  if (!strip) return text.slice(0, text.length - heldStopPrefix(text, stops));
  const left = stripStart(text);
  return stripEnd(left.slice(0, left.length - heldStopPrefix(left, stops)));
}

/** Python's str.lstrip(). */
function stripStart(text: string): string {
  return pythonStrip(`${text}.`).slice(0, -1);
}

/** Python's str.rstrip(). */
function stripEnd(text: string): string {
  return pythonStrip(`.${text}`).slice(1);
}
