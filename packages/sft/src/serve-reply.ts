// Running one queued request: generation with its sampling settings, and the reply written as
// server-sent events while the text grows, or as one chat.completion / text_completion object.

import type { ServerResponse } from 'node:http';
import { sendJson } from '@huatuo/http';
import { generate, type Generation, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { Cancelled } from './serve-errors.js';
import type { JobRequest } from './serve-request.js';
import { firstStop, visibleText } from './serve-stream-text.js';

/** A queued request with its client: whether the client has gone, and the tokens made so far. */
export interface Job extends JobRequest {
  res: ServerResponse;
  cancelled: boolean;
  tokens: number;
}

const usage = (g: Generation) => ({ prompt_tokens: g.promptTokens.length, completion_tokens: g.tokens.length, total_tokens: g.promptTokens.length + g.tokens.length });
const finishReason = (g: Generation, raw: string, stops: readonly string[]): 'stop' | 'length' => (g.finishReason === 'length' && firstStop(raw, stops) < 0 ? 'length' : 'stop');

// With stream_options.include_usage, OpenAI gives every chunk a usage field, null until the last.
const chunk = (job: Job, modelName: string, choice: Record<string, unknown>) => ({
  id: job.id,
  object: job.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
  created: job.created,
  model: modelName,
  system_fingerprint: null,
  choices: [{ index: 0, ...choice, logprobs: null }],
  ...(job.includeUsage ? { usage: null } : {}),
});

/** Writes one server-sent event (a JSON object, or a string such as [DONE]) unless the client has gone. */
export function sse(res: ServerResponse, data: unknown): void {
  if (!res.destroyed && !res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

/**
 * Generates the reply to `job` and writes it: server-sent events as the visible text grows
 * (chat chunks or completion texts, a finish reason, usage when asked, [DONE]), or one
 * chat.completion / text_completion object. Throws {@link Cancelled} when the client has gone.
 */
export async function reply(job: Job, model: LlamaModel, tokenizer: Tokenizer, modelName: string): Promise<Generation> {
  const s = job.sampling;
  const strip = job.strip;
  const res = job.res;
  let raw = '';
  let sent = '';
  if (job.stream) {
    // No Connection header: node keeps the connection open, or closes it after the stream when the
    // client sent "Connection: close" (a forced keep-alive would leave that socket open).
    // X-Accel-Buffering stops nginx-style reverse proxies from holding the events back.
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', 'x-request-id': job.id });
    if (job.kind === 'chat') sse(res, chunk(job, modelName, { delta: { role: 'assistant', content: '' }, finish_reason: null }));
    else if (job.echo) sse(res, chunk(job, modelName, { text: job.echo, finish_reason: null }));
  }
  const delta = (text: string): void => {
    if (text === '') return;
    sse(res, chunk(job, modelName, job.kind === 'chat' ? { delta: { content: text }, finish_reason: null } : { text, finish_reason: null }));
  };
  const [g] = await generate(model, tokenizer, [job.prompt], {
    maxNewTokens: s.maxTokens,
    doSample: s.doSample,
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    numBeams: s.numBeams,
    repetitionPenalty: s.repetitionPenalty,
    frequencyPenalty: s.frequencyPenalty,
    presencePenalty: s.presencePenalty,
    stopStrings: s.stop,
    seed: s.seed,
    onToken: (e) => {
      if (job.cancelled) throw new Cancelled();
      job.tokens++;
      if (!job.stream) return;
      raw += e.text;
      const visible = visibleText(raw, s.stop, strip, false);
      if (visible.startsWith(sent) && visible.length > sent.length) {
        delta(visible.slice(sent.length));
        sent = visible;
      }
    },
  });
  const gen = g!;
  const text = visibleText(gen.text, s.stop, strip, true);
  const reason = finishReason(gen, gen.text, s.stop);
  if (job.stream) {
    if (text.startsWith(sent)) delta(text.slice(sent.length));
    sse(res, chunk(job, modelName, job.kind === 'chat' ? { delta: {}, finish_reason: reason } : { text: '', finish_reason: reason }));
    if (job.includeUsage) sse(res, { ...chunk(job, modelName, {}), choices: [], usage: usage(gen) });
    sse(res, '[DONE]');
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
        system_fingerprint: null,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: reason }],
        usage: usage(gen),
      },
      { 'x-request-id': job.id },
    );
  } else {
    sendJson(
      res,
      200,
      {
        id: job.id,
        object: 'text_completion',
        created: job.created,
        model: modelName,
        system_fingerprint: null,
        choices: [{ index: 0, text: job.echo + text, logprobs: null, finish_reason: reason }],
        usage: usage(gen),
      },
      { 'x-request-id': job.id },
    );
  }
  return gen;
}
