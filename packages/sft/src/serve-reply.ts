// Running one queued request: generation with its sampling settings, and the reply written as
// server-sent events while the text grows, or as one chat.completion / text_completion object.

import type { ServerResponse } from 'node:http';
import { sendJson } from '@huatuo/http';
import { generate, promptLogprobs, type Generation, type LlamaModel, type PromptTokenLogprobs, type Tokenizer } from '@huatuo/llama';
import type { RowLogprobs } from '@huatuo/tensor';
import { Cancelled } from './serve-errors.js';
import type { JobRequest } from './serve-request.js';
import { chatLogprobs, completionLogprobs, promptLogprobsField } from './serve-logprobs.js';
import { firstStop, visibleText } from './serve-stream-text.js';

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
 * Generates the reply to `job` and writes it: server-sent events as the visible text grows
 * (chat chunks or completion texts, a finish reason, usage when asked, [DONE]), or one
 * chat.completion / text_completion object. Throws {@link Cancelled} when the client has gone.
 */
export async function reply(job: Job, model: LlamaModel, tokenizer: Tokenizer, modelName: string): Promise<readonly Generation[]> {
  const s = job.sampling;
  const strip = job.strip;
  const res = job.res;
  // An event written puts the next keep-alive comment a whole interval away.
  const send = (data: unknown): void => {
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
  // Each choice's stream: its raw text, the visible text sent, its tokens so far, its tokens' log probabilities not yet sent,
  // and the characters (Python's len) of its completion text streamed so far, where the next text_offset starts.
  // A choice's text: generate's, already cut at the stop string that ended it (cut again it could lose more, as
  // vLLM keeps the text before the first stop of the request's list, which may hold a later one); else cut where
  // the characters decoded last, flushed at the end, hold one.
  const finalText = (gen: Generation): string => visibleText(gen.text, gen.finishReason === 'stop' ? [] : s.stop, strip, true);
  const streams = Array.from({ length: s.n }, () => ({ raw: '', sent: '', tokens: 0, pending: { ids: [] as number[], rows: [] as RowLogprobs[] }, streamedChars: 0, finished: false }));
  const takeLogprobs = (i: number): unknown => {
    const c = streams[i]!;
    if (top === null || c.pending.ids.length === 0) return null;
    const lp = job.kind === 'chat' ? chatLogprobs(tokenizer, c.pending.rows, top) : completionLogprobs(tokenizer, c.pending.ids, c.pending.rows, top, c.streamedChars);
    c.pending = { ids: [], rows: [] };
    return lp;
  };
  // A streamed choice's first chunk: the echoed prompt, with its log-probabilities once they are known.
  const sendEcho = (i: number, rows: readonly (PromptTokenLogprobs | null)[]): void => {
    const lp = top === null ? null : completionLogprobs(tokenizer, job.prompt, rows, top, 0);
    send(chunk(job, modelName, i, { text: job.echo, finish_reason: null }, lp, streams[i]!.tokens));
    streams[i]!.streamedChars += [...job.echo].length;
  };
  if (job.stream) {
    openStream(job);
    for (let i = 0; i < s.n; i++) {
      if (job.kind === 'chat') send(chunk(job, modelName, i, { delta: { role: 'assistant', content: '' }, finish_reason: null }, null, 0));
      else if (job.echoPrompt && (top === null || job.echoOnly)) sendEcho(i, echoRows);
    }
  }
  const delta = (i: number, text: string): void => {
    if (text === '') return;
    const lp = takeLogprobs(i);
    send(chunk(job, modelName, i, job.kind === 'chat' ? { delta: { content: text }, finish_reason: null } : { text, finish_reason: null }, lp, streams[i]!.tokens));
    streams[i]!.streamedChars += [...text].length;
  };
  // A streamed choice's end, sent as it ends (as vLLM sends each choice's), in one chunk as vLLM's last step output
  // makes it (serving_completion.py's completion_stream_generator, serving_chat.py's chat_completion_stream_generator):
  // the text its last tokens completed (empty where they showed none: an end of sequence, a stop string), the finish
  // reason and stop_reason, and the log-probabilities of the tokens not sent yet, the last one's included.
  const finish = (i: number, gen: Generation): void => {
    const c = streams[i]!;
    if (c.finished) return;
    c.finished = true;
    const text = finalText(gen);
    const rest = text.startsWith(c.sent) ? text.slice(c.sent.length) : '';
    const ending = { finish_reason: finishReason(gen, gen.text, s.stop), stop_reason: stopReason(gen, tokenizer.eosId) };
    send(chunk(job, modelName, i, job.kind === 'chat' ? { delta: { content: rest }, ...ending } : { text: rest, ...ending }, takeLogprobs(i), c.tokens));
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
                  if (job.stream && job.echoPrompt && top !== null) sendEcho(e.prompt, e.logprobs);
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
            c.raw += e.text;
            // The last token's text goes with the finish reason (onFinish).
            if (e.finishReason !== undefined) return;
            const visible = visibleText(c.raw, s.stop, strip, false);
            if (visible.startsWith(c.sent) && visible.length > c.sent.length) {
              delta(e.prompt, visible.slice(c.sent.length));
              c.sent = visible;
            }
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
    if (job.includeUsage) send({ id: job.id, object: job.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: job.created, model: modelName, choices: [], usage: usage(gens) });
    send('[DONE]');
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
      send(reply);
      send('[DONE]');
      res.end();
    } else sendJson(res, 200, reply, { 'x-request-id': job.id });
  }
  return gens;
}
