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
 * Turns a choice's whole generated text into what the client sees: cut where the stop string that ends it begins
 * (where it ends, with `includeStop`, as vLLM's StopChecker truncates) and, for chat, stripped as HuaTuo's
 * get_response strips.
 */
export function visibleText(raw: string, view: TextView): string {
  const stop = findStopString(raw, view.stops);
  const text = stop === null ? raw : raw.slice(0, stop.at + (view.includeStop ? stop.stop.length : 0));
  return view.strip ? pythonStrip(text) : text;
}

/**
 * What a streamed choice shows while it goes on, token by token: its text less the last {@link heldBackChars}
 * characters, as vLLM's Sequence.get_output_text_to_return returns an unfinished sequence's text, stripped for chat
 * as far as the text so far allows (leading space dropped, trailing space held until more text follows). The
 * work of each token is its own text's: the characters held stay as the pieces they came in, and only those
 * released are walked. The text pushed holds no stop string, since generate ends a choice at the token that
 * completes one; the choice's end is {@link visibleText} of its whole text.
 */
export class StreamedText {
  /** The text held back, as the pieces it came in, from `head` on, with their characters (code points). */
  private readonly pieces: { text: string; chars: number }[] = [];
  private head = 0;
  private heldChars = 0;
  /** Whether text other than space has been shown (strip: space before it is dropped). */
  private started: boolean;
  /** Space released after the last text shown, shown once text follows it (strip). */
  private space = '';

  constructor(private readonly view: TextView) {
    this.started = !view.strip;
  }

  /** Adds the text of the next token and returns the text it newly shows ('' while held back). */
  push(text: string): string {
    let chars = 0;
    for (const _ of text) chars++;
    this.pieces.push({ text, chars });
    this.heldChars += chars;
    let released = '';
    while (this.heldChars > this.view.heldBack) {
      const piece = this.pieces[this.head]!;
      const excess = this.heldChars - this.view.heldBack;
      if (piece.chars <= excess) {
        released += piece.text;
        this.heldChars -= piece.chars;
        this.head++;
        continue;
      }
      let at = 0;
      let walked = 0;
      for (const c of piece.text) {
        if (walked++ === excess) break;
        at += c.length;
      }
      released += piece.text.slice(0, at);
      this.pieces[this.head] = { text: piece.text.slice(at), chars: piece.chars - excess };
      this.heldChars -= excess;
    }
    if (this.head > 1024 && this.head * 2 > this.pieces.length) this.head -= this.pieces.splice(0, this.head).length;
    return this.view.strip ? this.stripped(released) : released;
  }

  private stripped(released: string): string {
    let text = released;
    if (!this.started) {
      text = stripStart(text);
      if (text === '') return '';
      this.started = true;
    }
    const kept = stripEnd(text);
    if (kept === '') {
      this.space += text;
      return '';
    }
    const shown = this.space + kept;
    this.space = text.slice(kept.length);
    return shown;
  }
}

/** Python's str.lstrip(). */
function stripStart(text: string): string {
  return pythonStrip(`${text}.`).slice(0, -1);
}

/** Python's str.rstrip(). */
function stripEnd(text: string): string {
  return pythonStrip(`.${text}`).slice(1);
}
