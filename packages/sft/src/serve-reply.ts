// Running one queued request: generation with its sampling settings, and the reply written as
// server-sent events while the text grows, or as one chat.completion / text_completion object.

import type { ServerResponse } from 'node:http';
import { sendJson } from '@huatuo/http';
import { generate, promptLogprobs, type Generation, type LlamaModel, type PromptTokenLogprobs, type Tokenizer } from '@huatuo/llama';
import type { RowLogprobs } from '@huatuo/tensor';
import { Cancelled } from './serve-errors.js';
import type { JobRequest } from './serve-request.js';
import { chatLogprobs, completionLogprobs, promptLogprobsField } from './serve-logprobs.js';
import { firstStop, StreamedText, textView, visibleText } from './serve-stream-text.js';

/** A queued request with its client: whether the client has gone, and the tokens made so far. */
export interface Job extends JobRequest {
  res: ServerResponse;
  cancelled: boolean;
  tokens: number;
  /** A streamed reply's keep-alive timer ({@link keepStreamAlive}), re-armed by every event written. */
  keepAlive?: ReturnType<typeof setTimeout>;
}

// Usage as vLLM counts it over n choices: the prompt once, every choice's tokens. A reply not streamed carries
// vLLM's UsageInfo whole (prompt_tokens_details null); a stream's last chunk leaves the null out, as vLLM's does.
const usage = (gens: readonly Generation[]) => {
  const prompt = gens[0]!.promptTokens.length;
  const completion = gens.reduce((sum, g) => sum + g.tokens.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
};
const finishReason = (g: Generation, raw: string, stops: readonly string[]): 'stop' | 'length' => (g.finishReason === 'length' && firstStop(raw, stops) < 0 ? 'length' : 'stop');
/**
 * vLLM's stop_reason: the stop string that ended the choice, or the end-of-sequence id that did where it is not
 * the tokenizer's own (generation_config.json's others, which vLLM adds to stop_token_ids); null for the
 * tokenizer's end of sequence and for max_tokens.
 */
const stopReason = (g: Generation, eosId: number): string | number | null => {
  if (g.finishReason === 'stop') return g.stopString ?? null;
  const last = g.tokens.at(-1);
  return g.finishReason === 'eos' && last !== undefined && last !== eosId ? last : null;
};

// A completion chunk carries every field of vLLM's CompletionStreamResponse (written with its nulls, exclude_unset=False):
// each choice's stop_reason and the chunk's usage, null unless stream_options.continuous_usage_stats gives the
// choice's usage so far (UsageInfo whole, prompt_tokens_details null). A chat chunk carries the fields vLLM sets
// (exclude_unset=True): stop_reason in a choice's finish chunk alone, usage only with continuous_usage_stats (without
// prompt_tokens_details, unset). Neither class has system_fingerprint.
const chunk = (job: Job, modelName: string, index: number, choice: Record<string, unknown>, logprobs: unknown, completionTokens: number) => {
  const prompt = job.prompt.length;
  const counts = { prompt_tokens: prompt, completion_tokens: completionTokens, total_tokens: prompt + completionTokens };
  const chat = job.kind === 'chat';
  return {
    id: job.id,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    created: job.created,
    model: modelName,
    choices: [{ index, ...(chat ? {} : { stop_reason: null }), ...choice, logprobs }],
    ...(job.continuousUsage ? { usage: chat ? counts : { ...counts, prompt_tokens_details: null } } : chat ? {} : { usage: null }),
  };
};

/** Writes one server-sent event (a JSON object, or a string such as [DONE]) unless the client has gone. */
export function sse(res: ServerResponse, data: unknown): void {
  if (!res.destroyed && !res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

/** Starts a streamed reply, once: status 200 and the event-stream headers. */
function openStream(job: Job): void {
  if (job.res.headersSent) return;
  // No Connection header: node keeps the connection open, or closes it after the stream when the
  // client sent "Connection: close" (a forced keep-alive would leave that socket open).
  // X-Accel-Buffering stops nginx-style reverse proxies from holding the events back.
  job.res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', 'x-request-id': job.id });
}

/**
 * Writes an SSE comment line (": keep-alive", which event-stream clients skip) on `job`'s stream whenever
 * `intervalMs` pass with nothing written, from now until the reply ends, so that proxies and clients with an idle
 * timeout do not cut a stream that waits in the queue or on a long prompt's prefill. The first one starts the
 * stream (status 200); an error after that is an error event, as one during generation is.
 */
export function keepStreamAlive(job: Job, intervalMs: number): void {
  const res = job.res;
  const timer = setTimeout(() => {
    if (res.destroyed || res.writableEnded) return;
    openStream(job);
    res.write(': keep-alive\n\n');
    timer.refresh();
  }, intervalMs);
  timer.unref();
  job.keepAlive = timer;
  res.on('close', () => clearTimeout(timer));
}

/**
 * Generates the reply to `job` and writes it: server-sent events, a chunk for each token as vLLM sends one for each
 * engine step (chat chunks or completion texts, a finish reason, usage when asked, [DONE]), or one
 * chat.completion / text_completion object. Throws {@link Cancelled} when the client has gone.
 */
export async function reply(job: Job, model: LlamaModel, tokenizer: Tokenizer, modelName: string): Promise<readonly Generation[]> {
  const s = job.sampling;
  const strip = job.strip;
  const res = job.res;
  // An event written puts the next keep-alive comment a whole interval away.
  const sendEvent = (data: unknown): void => {
    sse(res, data);
    job.keepAlive?.refresh();
  };
  const top = job.logprobs;
  // The prompt's log-probabilities (its first token has none), for prompt_logprobs or an echo with logprobs, with
  // prompt_logprobs' most likely tokens where given, else logprobs' (vLLM's CompletionRequest.to_sampling_params):
  // scored alone when nothing is generated (max_tokens 0), else by generation's own prompt step (one forward pass
  // over the prompt either way). Either way a reply not streamed carries them as the choices' prompt_logprobs, ranked.
  const promptTop = job.promptLogprobs ?? (job.echoPrompt ? top : null);
  const ranks = promptTop !== null && !job.stream;
  const echoRows = promptTop !== null && job.echoOnly ? await promptLogprobs(model, job.prompt, promptTop, { ranks }) : [];
  if (job.cancelled) throw new Cancelled();
  const view = textView(s.stop, s.includeStop, strip);
  // A choice's text: generate's, already cut where the stop string that ended it begins (cut again it could lose
  // more, as vLLM keeps the text before the first stop of the request's list, which may hold a later one), the stop
  // string put back with include_stop_str_in_output; else cut where the characters decoded last, flushed at the end,
  // hold one.
  const finalText = (gen: Generation): string =>
    gen.finishReason === 'stop' ? visibleText(view.includeStop ? gen.text + (gen.stopString ?? '') : gen.text, { ...view, stops: [], heldBack: 0 }) : visibleText(gen.text, view);
  // Each choice's stream: its text as streamed so far, the visible text sent, its tokens so far, the log probabilities of its tokens
  // not yet sent, the characters (Python's len) of its generated text streamed so far, where the next text_offset
  // starts, and (completions with echo) the prompt's rows while the prompt is not sent yet.
  const streams = Array.from({ length: s.n }, () => ({
    text: new StreamedText(view),
    sent: '',
    tokens: 0,
    pending: { ids: [] as number[], rows: [] as RowLogprobs[] },
    streamedChars: 0,
    finished: false,
    echo: job.echoPrompt ? { rows: echoRows as readonly (PromptTokenLogprobs | null)[] } : null,
  }));
  // A chunk of choice i: `text` and the log-probabilities of its tokens not sent yet, after the echoed prompt and the
  // prompt's log-probabilities in its first chunk, as vLLM's completion_stream_generator puts them with the first
  // step's output (text_offset from 0). The offsets of later chunks go on from the generated text alone, as vLLM's
  // previous_text_lens counts it.
  const send = (i: number, text: string, ending: { finish_reason: string; stop_reason: string | number | null } | null): void => {
    const c = streams[i]!;
    const echo = c.echo;
    c.echo = null;
    const ids = echo === null ? c.pending.ids : [...job.prompt, ...c.pending.ids];
    const rows = echo === null ? c.pending.rows : [...echo.rows, ...c.pending.rows];
    const lp = top === null || ids.length === 0 ? null : job.kind === 'chat' ? chatLogprobs(tokenizer, c.pending.rows, top) : completionLogprobs(tokenizer, ids, rows, top, c.streamedChars);
    c.pending = { ids: [], rows: [] };
    const end = ending ?? { finish_reason: null };
    sendEvent(chunk(job, modelName, i, job.kind === 'chat' ? { delta: { content: text }, ...end } : { text: echo === null ? text : job.echo + text, ...end }, lp, c.tokens));
    c.streamedChars += [...text].length;
  };
  if (job.stream) {
    openStream(job);
    if (job.kind === 'chat') for (let i = 0; i < s.n; i++) sendEvent(chunk(job, modelName, i, { delta: { role: 'assistant', content: '' }, finish_reason: null }, null, 0));
  }
  // A streamed choice's end, sent as it ends (as vLLM sends each choice's), in one chunk as vLLM's last step output
  // makes it (serving_completion.py's completion_stream_generator, serving_chat.py's chat_completion_stream_generator):
  // the text its last token completed and the text held back (empty where they show none: an end of sequence, a stop
  // string), the finish reason and stop_reason, and the last token's log-probabilities.
  const finish = (i: number, gen: Generation): void => {
    const c = streams[i]!;
    if (c.finished) return;
    c.finished = true;
    const text = finalText(gen);
    send(i, text.startsWith(c.sent) ? text.slice(c.sent.length) : '', { finish_reason: finishReason(gen, gen.text, s.stop), stop_reason: stopReason(gen, tokenizer.eosId) });
  };
  // The n choices (best_of sequences) decode as one batch of the prompt repeated, sequence i sampling with
  // seed + i as vLLM seeds them; the prompt step runs once for all.
  const ranked = s.bestOf > s.n && !job.echoOnly;
  const sequences = Array.from({ length: s.bestOf }, () => job.prompt);
  const generated: readonly Generation[] = job.echoOnly
    ? streams.map(() => ({ promptTokens: job.prompt, tokens: [], text: '', finishReason: 'length' as const, logprobs: [], promptLogprobs: echoRows }))
    : await generate(
        model,
        tokenizer,
        sequences,
        {
          maxNewTokens: s.maxTokens,
          doSample: s.doSample,
          temperature: s.temperature,
          topP: s.topP,
          topK: s.topK,
          numBeams: s.numBeams,
          repetitionPenalty: s.repetitionPenalty,
          frequencyPenalty: s.frequencyPenalty,
          presencePenalty: s.presencePenalty,
          logitBias: s.logitBias,
          stopStrings: s.stop,
          seeds: sequences.map((_, i) => (s.seed + i) >>> 0),
          ...(ranked ? { cumulativeLogprob: true } : {}),
          ...(top === null ? {} : { logprobs: top }),
          ...(promptTop === null
            ? {}
            : {
                promptLogprobs: promptTop,
                promptRanks: ranks,
                onPromptLogprobs: (e) => {
                  if (job.cancelled) throw new Cancelled();
                  const echo = job.stream ? streams[e.prompt]!.echo : null;
                  if (echo !== null) echo.rows = e.logprobs;
                },
              }),
          onToken: (e) => {
            if (job.cancelled) throw new Cancelled();
            job.tokens++;
            if (!job.stream) return;
            const c = streams[e.prompt]!;
            c.tokens++;
            if (e.logprobs !== undefined) {
              c.pending.ids.push(e.token);
              c.pending.rows.push(e.logprobs);
            }
            // The last token's text goes with the finish reason (onFinish).
            if (e.finishReason !== undefined) return;
            // As vLLM's engine gives each step's output, every token makes a chunk, with the text it shows (none while
            // a character is incomplete or the text is held back) and its log-probabilities.
            const shown = c.text.push(e.text);
            c.sent += shown;
            send(e.prompt, shown, null);
          },
          onFinish: (e) => {
            if (job.cancelled) throw new Cancelled();
            if (job.stream) finish(e.prompt, e.generation);
          },
        },
      );
  // best_of: the n sequences of the highest cumulative log-probability, as vLLM's V0 engine sorts them (stable: ties in order).
  const gens = ranked ? [...generated].sort((a, b) => b.cumulativeLogprob! - a.cumulativeLogprob!).slice(0, s.n) : generated;
  const choices = gens.map((gen) => ({ gen, text: finalText(gen), reason: finishReason(gen, gen.text, s.stop), stop: stopReason(gen, tokenizer.eosId), rows: gen.logprobs ?? [] }));
  // vLLM's UsageInfo and the fields of its replies not streamed, written with their nulls (pydantic's model_dump).
  const wholeUsage = { ...usage(gens), prompt_tokens_details: null };
  if (job.stream) {
    gens.forEach((gen, i) => finish(i, gen));
    // vLLM writes the usage chunk without nulls (exclude_none).
    if (job.includeUsage) sendEvent({ id: job.id, object: job.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: job.created, model: modelName, choices: [], usage: usage(gens) });
    sendEvent('[DONE]');
    res.end();
  } else if (job.kind === 'chat') {
    sendJson(
      res,
      200,
      {
        id: job.id,
        object: 'chat.completion',
        created: job.created,
        model: modelName,
        choices: choices.map(({ text, reason, stop, rows }, index) => ({
          index,
          message: { role: 'assistant', content: text, refusal: null, annotations: null, audio: null, function_call: null, tool_calls: [], reasoning_content: null },
          logprobs: top === null ? null : chatLogprobs(tokenizer, rows, top),
          finish_reason: reason,
          stop_reason: stop,
        })),
        service_tier: null,
        system_fingerprint: null,
        usage: wholeUsage,
        prompt_logprobs: null,
        kv_transfer_params: null,
      },
      { 'x-request-id': job.id },
    );
  } else {
    const reply = {
      id: job.id,
      object: 'text_completion',
      created: job.created,
      model: modelName,
      choices: choices.map(({ gen, text, reason, stop, rows }, index) => ({
        index,
        text: job.echo + text,
        logprobs: top === null ? null : completionLogprobs(tokenizer, job.echoPrompt ? [...job.prompt, ...gen.tokens] : gen.tokens, job.echoPrompt ? [...(gen.promptLogprobs ?? []), ...rows] : rows, top, 0),
        finish_reason: reason,
        stop_reason: stop,
        prompt_logprobs: promptTop === null ? null : promptLogprobsField(tokenizer, gen.promptLogprobs ?? [], promptTop),
      })),
      service_tier: null,
      system_fingerprint: null,
      usage: wholeUsage,
      kv_transfer_params: null,
    };
    if (job.streamWhole) {
      openStream(job);
      sendEvent(reply);
      sendEvent('[DONE]');
      res.end();
    } else sendJson(res, 200, reply, { 'x-request-id': job.id });
  }
  return gens;
}
