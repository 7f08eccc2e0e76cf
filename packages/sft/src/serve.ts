// An OpenAI-compatible HTTP server for a LLaMA (plus adapter) on plain node:http:
// /v1/chat/completions (HuaTuo's prompt template), /v1/completions, /v1/models and /health,
// with server-sent-event streaming, one generation at a time in FIFO order behind a bounded queue.

import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AccessConfigError, AccessGuard, BodyTooLargeError, normalizeAllowedHosts, normalizeCorsOrigins, readBody, sendJson } from '@huatuo/http';
import { checkMemoryPlan, generate, planMemory, type Generation, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { deviceInfo } from '@huatuo/tensor';
import { ConfigError } from './errors.js';
import { generatePrompt, pythonStrip, type PromptTemplate } from './prompt.js';
import { longestPieceChars, retryAfterSeconds, type RunningEstimate } from './serve-limits.js';
import { TokenizerThread } from './tokenize-thread.js';

/** Generation settings used when a request leaves a field out. */
export interface ServeGenerationDefaults {
  /** New tokens when a request gives no max_tokens (clipped to the context left). Default 256. */
  maxTokens: number;
  /** OpenAI's default 1; 0 decodes greedily. */
  temperature: number;
  /** OpenAI's default 1 (no nucleus filtering). */
  topP: number;
  /** Extension `top_k`; 0 (OpenAI's behaviour) keeps every token. */
  topK: number;
  /** Extension `num_beams`; 1 samples (or decodes greedily at temperature 0). */
  numBeams: number;
  /** Extension `repetition_penalty`; 1 is none. */
  repetitionPenalty: number;
}

/** OpenAI's defaults, 256 new tokens at most when a request does not say. */
export const DEFAULT_SERVE_GENERATION: Readonly<ServeGenerationDefaults> = Object.freeze({
  maxTokens: 256,
  temperature: 1,
  topP: 1,
  topK: 0,
  numBeams: 1,
  repetitionPenalty: 1,
});

/** What happened to a request, for logs and tests. */
export interface ServeEvent {
  type: 'queued' | 'started' | 'finished' | 'cancelled' | 'failed' | 'rejected';
  /** The response id (chatcmpl-... or cmpl-...). */
  id: string;
  /** Requests waiting behind the one running, after this event. */
  waiting: number;
  /** New tokens generated (finished, cancelled, failed). */
  completionTokens?: number;
  /** Why (rejected, failed, cancelled). */
  detail?: string;
}

/** Options of {@link startServer}. */
export interface ServeOptions {
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** Template that turns a chat into a prompt (HuaTuo's med_template, usually). */
  template: PromptTemplate;
  /** The id served at /v1/models; requests must name it. */
  modelName: string;
  /** Address to bind. Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Port; 0 picks a free one. Default 0. */
  port?: number;
  /** Bearer token every /v1 request must carry; none means the API is open. */
  apiKey?: string;
  /** Requests that may wait behind the one generating; more get 503. Default 16. */
  maxQueue?: number;
  /** Largest request body in bytes; larger get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Most new tokens one request may ask for. Default the model's max_position_embeddings. */
  maxTokensLimit?: number;
  /** Generation settings for fields a request leaves out. */
  defaultGeneration?: Partial<ServeGenerationDefaults>;
  /** Called on every queue event (the CLI logs them). */
  onEvent?: (event: ServeEvent) => void;
  /** More Host header values to accept besides the bound address and localhost (a name alone: any port). */
  allowedHosts?: readonly string[];
  /** Origins whose pages may call the API cross-origin (`*`: any); by default browsers may call it only from its own origin. */
  corsOrigins?: readonly string[];
  /** Folder `tokenizer` was loaded from; given, prompts are tokenized on a worker thread so a long one does not stall other requests. */
  tokenizerDir?: string;
}

/** A running server. */
export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8000 (the OpenAI base URL is this plus /v1). */
  url: string;
  host: string;
  port: number;
  /** Stops accepting requests, answers waiting ones with 503, stops the running generation, and closes every connection. */
  close(): Promise<void>;
}

type ErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error' | 'overloaded_error';

/** A request refused with an OpenAI error object. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Thrown from the token callback to stop generating for a client that has gone. */
class Cancelled extends Error {}

/** One chat message as OpenAI sends it. */
export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

/**
 * The single question HuaTuo's single-turn template receives for a chat. System (and
 * developer) messages come first, joined by newlines, each followed by a newline. A chat
 * with one user message and nothing before it gives that message as is (HuaTuo's
 * med_template data). With earlier turns, the conversation is written the way HuaTuo's
 * liver-cancer data writes multi-turn records: " <user>: q1 <bot>: a1 <user>: q2".
 * The last message must be the user's.
 *
 * @example chatToInstruction([{ role: 'user', content: '头痛怎么办？' }]) === '头痛怎么办？'
 */
export function chatToInstruction(messages: readonly ChatMessage[]): string {
  const system = messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => `${m.content}\n`).join('');
  const turns = messages.filter((m) => m.role === 'user' || m.role === 'assistant');
  const last = turns[turns.length - 1];
  if (last === undefined || last.role !== 'user') {
    throw new HttpError(400, 'messages: the last user or assistant message must be from the user (the model answers the last question)', 'invalid_request_error', 'messages');
  }
  if (turns.length === 1) return `${system}${last.content}`;
  return system + turns.map((m) => ` <${m.role === 'user' ? 'user' : 'bot'}>: ${m.content}`).join('');
}

interface Sampling {
  maxTokens: number;
  doSample: boolean;
  temperature: number;
  topP: number;
  topK: number;
  numBeams: number;
  repetitionPenalty: number;
  stop: string[];
  seed: number;
}

interface Job {
  id: string;
  kind: 'chat' | 'completion';
  created: number;
  prompt: number[];
  /** Text before the completion (completions with echo). */
  echo: string;
  sampling: Sampling;
  stream: boolean;
  includeUsage: boolean;
  res: ServerResponse;
  cancelled: boolean;
  /** Tokens generated so far (counts toward a cancelled job's report). */
  tokens: number;
}

function errorBody(e: HttpError): unknown {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.status, errorBody(e), e.headers);
}

// ---- Request validation: OpenAI's field names and types, null meaning absent.

type Body = Record<string, unknown>;

function typeName(v: unknown): string {
  if (v === undefined) return 'nothing (the field is missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

function bad(param: string, expected: string, got: unknown): HttpError {
  return new HttpError(400, `${param}: expected ${expected}, got ${typeName(got)}`, 'invalid_request_error', param);
}

function optional<T>(body: Body, key: string, check: (v: unknown) => v is T, expected: string): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw bad(key, expected, v);
  return v;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

function inRange(body: Body, key: string, lo: number, hi: number, integer: boolean): number | undefined {
  const v = optional(body, key, integer ? isInt : isNumber, integer ? 'an integer' : 'a number');
  if (v !== undefined && (v < lo || v > hi)) throw new HttpError(400, `${key}: expected ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${v}`, 'invalid_request_error', key);
  return v;
}

/** Refuses OpenAI features this server does not implement, when a request turns them on. */
function refuseUnsupported(body: Body, keys: readonly string[]): void {
  for (const key of keys) {
    const v = body[key];
    const off = v === undefined || v === null || v === false || v === 0 || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);
    if (!off) throw new HttpError(400, `${key}: not supported by this server (got ${typeName(v)}); leave it out`, 'invalid_request_error', key);
  }
}

/** Text of a message's content: a string, or an array of {type: 'text', text} parts. */
function messageText(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v
      .map((part, j) => {
        if (!isObject(part) || part['type'] !== 'text' || typeof part['text'] !== 'string') {
          throw new HttpError(400, `${where}[${j}]: expected a text part {"type": "text", "text": "..."}, got ${typeName(part)}; only text content is supported`, 'invalid_request_error', where);
        }
        return part['text'];
      })
      .join('');
  }
  throw bad(where, 'a string or an array of text parts', v);
}

function parseMessages(body: Body): ChatMessage[] {
  const raw = body['messages'];
  if (!Array.isArray(raw) || raw.length === 0) throw bad('messages', 'a non-empty array of {role, content}', raw);
  return raw.map((m, i) => {
    if (!isObject(m)) throw bad(`messages[${i}]`, 'an object {role, content}', m);
    const role = m['role'];
    if (role !== 'system' && role !== 'developer' && role !== 'user' && role !== 'assistant') {
      throw new HttpError(400, `messages[${i}].role: expected "system", "developer", "user" or "assistant", got ${typeName(role)} (tools are not supported)`, 'invalid_request_error', `messages[${i}].role`);
    }
    return { role, content: messageText(m['content'], `messages[${i}].content`) };
  });
}

function parseStop(body: Body): string[] {
  const v = body['stop'];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== 'string' || s === '')) {
    throw bad('stop', 'a non-empty string or an array of up to 4 non-empty strings', v);
  }
  return list as string[];
}

// ---- Streaming text: what may be sent before generation ends.

/** Index of the earliest stop string in `text`, or -1. */
function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
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
 * Turns the raw generated text into what the client sees: cut at the first stop string and,
 * for chat, stripped as HuaTuo's get_response strips. `safe` is the part that no later token
 * can change.
 */
function visibleText(raw: string, stops: readonly string[], strip: boolean, final: boolean): string {
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

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Serves a model (with any LoRA adapter already applied) behind OpenAI's API:
 * POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/models/{id},
 * GET /health. Chat messages fill the prompt template (see {@link chatToInstruction}) and
 * the reply is the text after the template's response marker; completions continue the raw
 * prompt. Requests run one at a time in arrival order; beyond `maxQueue` waiting ones the
 * server answers 503 with Retry-After. Sampling follows OpenAI: temperature (0 is greedy),
 * top_p, seed, stop, max_tokens / max_completion_tokens, n = 1 only; the extensions
 * `num_beams` (beam search, which ignores temperature, top_p and seed), `top_k` and
 * `repetition_penalty` are accepted too. A streaming client that disconnects stops its
 * generation at the next token.
 *
 * @example
 * const server = await startServer({ model, tokenizer, template: MED_TEMPLATE, modelName: 'huatuo' });
 * const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' });
 * await client.chat.completions.create({ model: 'huatuo', messages: [{ role: 'user', content: '头痛怎么办？' }] });
 * await server.close();
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { model, tokenizer, template, modelName } = options;
  const host = options.host ?? '127.0.0.1';
  const maxQueue = options.maxQueue ?? 16;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const context = model.config.maxPositionEmbeddings;
  const maxTokensLimit = options.maxTokensLimit ?? context;
  const defaults: ServeGenerationDefaults = { ...DEFAULT_SERVE_GENERATION, ...options.defaultGeneration };
  if (!Number.isSafeInteger(maxQueue) || maxQueue < 0) throw new ConfigError('--max-queue', `startServer: maxQueue should be an integer >= 0, got ${maxQueue}`);
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) throw new ConfigError('--max-body-bytes', `startServer: maxBodyBytes should be a positive integer, got ${maxBodyBytes}`);
  if (!Number.isSafeInteger(maxTokensLimit) || maxTokensLimit < 1) throw new ConfigError('--max-tokens-limit', `startServer: maxTokensLimit should be a positive integer, got ${maxTokensLimit}`);
  if (!Number.isSafeInteger(defaults.maxTokens) || defaults.maxTokens < 1) throw new ConfigError('--default-max-tokens', `startServer: defaultGeneration.maxTokens should be a positive integer, got ${defaults.maxTokens}`);
  const access = { allowedHosts: options.allowedHosts ?? [], corsOrigins: options.corsOrigins ?? [] };
  try {
    normalizeAllowedHosts(access.allowedHosts);
    normalizeCorsOrigins(access.corsOrigins);
  } catch (e) {
    if (e instanceof AccessConfigError) throw new ConfigError(e.option === 'allowedHosts' ? '--allowed-hosts' : '--cors-origin', e.message);
    throw e;
  }
  const created = Math.floor(Date.now() / 1000);
  const emit = (e: ServeEvent) => options.onEvent?.(e);

  const queue: Job[] = [];
  let running: Job | null = null;
  let closing = false;
  let idle: Promise<void> = Promise.resolve();
  let wake: (() => void) | null = null;
  /** Seconds per generated token of recent generations (prefill included), newest last. */
  const recentRates: number[] = [];
  let runningSince = 0;

  const retryAfter = (): string => {
    const estimate: RunningEstimate | null =
      running === null ? null : { elapsedSeconds: (performance.now() - runningSince) / 1000, tokens: running.tokens, maxTokens: running.sampling.maxTokens };
    return String(retryAfterSeconds(estimate, recentRates));
  };

  // A prompt longer than this many characters cannot fit the context, whatever its tokens.
  const maxPromptChars = context * longestPieceChars(tokenizer);
  const checkPromptChars = (text: string, param: string): void => {
    if (text.length <= maxPromptChars) return;
    throw new HttpError(
      400,
      `the prompt is ${text.length} characters, more than this model's context of ${context} tokens (max_position_embeddings) can hold: no token of its tokenizer is longer than ${maxPromptChars / context} characters, so at most ${maxPromptChars} fit; shorten the ${param === 'prompt' ? 'prompt' : 'messages'}`,
      'invalid_request_error',
      param,
      'context_length_exceeded',
    );
  };
  const thread = options.tokenizerDir === undefined ? null : await TokenizerThread.start(options.tokenizerDir, tokenizer);
  const encode = (text: string): Promise<number[]> => (thread === null ? Promise.resolve(tokenizer.encode(text)) : thread.encode(text));

  // ---- Request -> job

  const sampling = (body: Body, promptTokens: number, extraStops: readonly string[]): Sampling => {
    for (const key of ['n', 'best_of']) {
      const v = optional(body, key, isInt, 'an integer');
      if (v !== undefined && v !== 1) throw new HttpError(400, `${key}: this server returns one choice per request, got ${v}; send ${key}: 1 or leave it out`, 'invalid_request_error', key);
    }
    const maxCompletion = inRange(body, 'max_completion_tokens', 1, maxTokensLimit, true);
    const maxTokensField = inRange(body, 'max_tokens', 1, maxTokensLimit, true);
    const left = context - promptTokens;
    if (left < 1) {
      throw new HttpError(400, `the prompt is ${promptTokens} tokens, and this model's context is ${context} tokens (max_position_embeddings), leaving no room for an answer; shorten the messages`, 'invalid_request_error', 'messages', 'context_length_exceeded');
    }
    const asked = maxCompletion ?? maxTokensField;
    const askedParam = maxCompletion !== undefined ? 'max_completion_tokens' : 'max_tokens';
    if (asked !== undefined && asked > left) {
      throw new HttpError(
        400,
        `the prompt is ${promptTokens} tokens and ${askedParam} asks for ${asked} more, beyond this model's context of ${context} tokens; ask for at most ${left} or shorten the prompt`,
        'invalid_request_error',
        askedParam,
        'context_length_exceeded',
      );
    }
    const temperature = inRange(body, 'temperature', 0, 2, false) ?? defaults.temperature;
    const topP = inRange(body, 'top_p', 0, 1, false) ?? defaults.topP;
    const topK = inRange(body, 'top_k', 0, model.config.vocabSize, true) ?? defaults.topK;
    const numBeams = inRange(body, 'num_beams', 1, 16, true) ?? defaults.numBeams;
    const repetitionPenalty = inRange(body, 'repetition_penalty', 0.01, 10, false) ?? defaults.repetitionPenalty;
    const seed = inRange(body, 'seed', -(2 ** 53 - 1), 2 ** 53 - 1, true) ?? randomInt(2 ** 31);
    let maxTokens = asked ?? Math.min(defaults.maxTokens, maxTokensLimit, left);
    const fit = memoryRefusal(numBeams, promptTokens + maxTokens);
    if (fit !== null) {
      if (asked !== undefined) throw new HttpError(400, `${askedParam} ${asked} with a prompt of ${promptTokens} tokens does not fit the GPU: ${fit}`, 'invalid_request_error', askedParam, 'context_length_exceeded');
      // No length asked for: the longest answer that fits.
      let lo = 0;
      for (let hi = maxTokens; hi - lo > 1; ) {
        const mid = (lo + hi) >> 1;
        if (memoryRefusal(numBeams, promptTokens + mid) === null) lo = mid;
        else hi = mid;
      }
      if (lo === 0) throw new HttpError(400, `a prompt of ${promptTokens} tokens does not fit the GPU: ${fit}; shorten the messages`, 'invalid_request_error', 'messages', 'context_length_exceeded');
      maxTokens = lo;
    }
    return {
      maxTokens,
      doSample: numBeams === 1 && temperature > 0 && topP > 0 && topK !== 1,
      temperature: temperature > 0 ? temperature : 1,
      topP: topP > 0 ? topP : 1,
      topK,
      numBeams,
      repetitionPenalty,
      stop: [...parseStop(body), ...extraStops],
      seed: Number(BigInt.asUintN(32, BigInt(seed))),
    };
  };

  /** Why a generation of `length` tokens (prompt included) on `beams` sequences cannot fit the device, or null. */
  const memoryRefusal = (beams: number, length: number): string | null => {
    const info = deviceInfo();
    if (info === null) return null;
    try {
      checkMemoryPlan(planMemory(model.config, { batchSize: beams, seqLen: length, dtype: model.dtype, training: false }), info, `${beams} sequence(s) of ${length} tokens`);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  };

  const checkModel = (body: Body): void => {
    const m = body['model'];
    if (m === undefined || m === null) throw new HttpError(400, `model: missing; name the model to use, "${modelName}" on this server (see GET /v1/models)`, 'invalid_request_error', 'model');
    if (typeof m !== 'string') throw bad('model', `a string (this server serves "${modelName}")`, m);
    if (m !== modelName) throw new HttpError(404, `The model \`${m}\` does not exist; this server serves "${modelName}" (see GET /v1/models)`, 'invalid_request_error', 'model', 'model_not_found');
  };

  const streamOptions = (body: Body, stream: boolean): boolean => {
    const so = optional(body, 'stream_options', isObject, 'an object {include_usage}');
    if (so === undefined) return false;
    if (!stream) throw new HttpError(400, 'stream_options: only allowed with "stream": true', 'invalid_request_error', 'stream_options');
    return optional(so, 'include_usage', isBool, 'a boolean') ?? false;
  };

  const chatJob = async (body: Body, res: ServerResponse): Promise<Job> => {
    checkModel(body);
    refuseUnsupported(body, ['tools', 'functions', 'tool_choice', 'function_call', 'logprobs', 'top_logprobs', 'logit_bias', 'audio', 'prediction']);
    const rf = body['response_format'];
    if (rf !== undefined && rf !== null && !(isObject(rf) && rf['type'] === 'text')) {
      throw new HttpError(400, `response_format: only {"type": "text"} is supported, got ${JSON.stringify(rf).slice(0, 80)}`, 'invalid_request_error', 'response_format');
    }
    const messages = parseMessages(body);
    const stream = optional(body, 'stream', isBool, 'a boolean') ?? false;
    const promptText = generatePrompt(template, chatToInstruction(messages));
    checkPromptChars(promptText, 'messages');
    const prompt = await encode(promptText);
    return {
      id: newId('chatcmpl'),
      kind: 'chat',
      created: Math.floor(Date.now() / 1000),
      prompt,
      echo: '',
      // The model writing the response marker again ends its answer (get_response reads up to it).
      sampling: sampling(body, prompt.length, [template.responseSplit]),
      stream,
      includeUsage: streamOptions(body, stream),
      res,
      cancelled: false,
      tokens: 0,
    };
  };

  const completionJob = async (body: Body, res: ServerResponse): Promise<Job> => {
    checkModel(body);
    refuseUnsupported(body, ['logprobs', 'logit_bias', 'suffix']);
    let raw = body['prompt'];
    if (Array.isArray(raw) && raw.length === 1 && (typeof raw[0] === 'string' || Array.isArray(raw[0]))) raw = raw[0];
    let prompt: number[];
    let text: string;
    if (typeof raw === 'string') {
      if (raw === '') throw new HttpError(400, 'prompt: is empty; give the text to continue', 'invalid_request_error', 'prompt');
      checkPromptChars(raw, 'prompt');
      prompt = await encode(raw);
      text = raw;
    } else if (Array.isArray(raw) && raw.length > 0 && raw.every((t) => Number.isInteger(t) && (t as number) >= 0 && (t as number) < model.config.vocabSize)) {
      prompt = raw as number[];
      text = tokenizer.decode(prompt, { skipSpecialTokens: true });
    } else {
      throw bad('prompt', `a non-empty string, or one array of token ids in [0, ${model.config.vocabSize}) (one prompt per request)`, raw);
    }
    const stream = optional(body, 'stream', isBool, 'a boolean') ?? false;
    const echo = optional(body, 'echo', isBool, 'a boolean') ?? false;
    return {
      id: newId('cmpl'),
      kind: 'completion',
      created: Math.floor(Date.now() / 1000),
      prompt,
      echo: echo ? text : '',
      sampling: sampling(body, prompt.length, []),
      stream,
      includeUsage: streamOptions(body, stream),
      res,
      cancelled: false,
      tokens: 0,
    };
  };

  // ---- Responses

  const usage = (g: Generation) => ({ prompt_tokens: g.promptTokens.length, completion_tokens: g.tokens.length, total_tokens: g.promptTokens.length + g.tokens.length });
  const finishReason = (g: Generation, raw: string, stops: readonly string[]): 'stop' | 'length' => (g.finishReason === 'length' && firstStop(raw, stops) < 0 ? 'length' : 'stop');

  const chunk = (job: Job, choice: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    id: job.id,
    object: job.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
    created: job.created,
    model: modelName,
    system_fingerprint: null,
    choices: [{ index: 0, ...choice, logprobs: null }],
    ...extra,
  });

  const sse = (res: ServerResponse, data: unknown): void => {
    if (!res.destroyed && !res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  };

  const run = async (job: Job): Promise<void> => {
    const s = job.sampling;
    const strip = job.kind === 'chat';
    const res = job.res;
    let raw = '';
    let sent = '';
    if (job.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': job.id });
      if (job.kind === 'chat') sse(res, chunk(job, { delta: { role: 'assistant', content: '' }, finish_reason: null }));
      else if (job.echo) sse(res, chunk(job, { text: job.echo, finish_reason: null }));
    }
    const delta = (text: string): void => {
      if (text === '') return;
      sse(res, chunk(job, job.kind === 'chat' ? { delta: { content: text }, finish_reason: null } : { text, finish_reason: null }));
    };
    const [g] = await generate(model, tokenizer, [job.prompt], {
      maxNewTokens: s.maxTokens,
      doSample: s.doSample,
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      numBeams: s.numBeams,
      repetitionPenalty: s.repetitionPenalty,
      stopStrings: s.stop,
      seed: s.seed,
      addBos: true,
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
      sse(res, chunk(job, job.kind === 'chat' ? { delta: {}, finish_reason: reason } : { text: '', finish_reason: reason }));
      if (job.includeUsage) sse(res, { ...chunk(job, {}), choices: [], usage: usage(gen) });
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
    emit({ type: 'finished', id: job.id, waiting: queue.length, completionTokens: gen.tokens.length });
  };

  // ---- The worker: one generation at a time, in arrival order.

  const worker = async (): Promise<void> => {
    for (;;) {
      const job = queue.shift();
      if (job === undefined) {
        if (closing) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
        continue;
      }
      if (job.cancelled) {
        emit({ type: 'cancelled', id: job.id, waiting: queue.length, completionTokens: 0, detail: 'the client went away while the request waited' });
        continue;
      }
      running = job;
      runningSince = performance.now();
      emit({ type: 'started', id: job.id, waiting: queue.length });
      try {
        await run(job);
        if (job.tokens > 0) recentRates.push((performance.now() - runningSince) / 1000 / job.tokens);
        if (recentRates.length > 8) recentRates.shift();
      } catch (e) {
        if (e instanceof Cancelled) {
          emit({ type: 'cancelled', id: job.id, waiting: queue.length, completionTokens: job.tokens, detail: closing ? 'the server is shutting down' : 'the client went away' });
          if (!job.res.headersSent) sendError(job.res, new HttpError(503, 'the server is shutting down; retry against a running server', 'overloaded_error'));
          job.res.end();
        } else {
          const message = `generation failed: ${(e as Error).message}`;
          emit({ type: 'failed', id: job.id, waiting: queue.length, completionTokens: job.tokens, detail: message });
          if (job.res.headersSent) {
            sse(job.res, errorBody(new HttpError(500, message, 'server_error')));
            job.res.end();
          } else sendError(job.res, new HttpError(500, message, 'server_error'));
        }
      } finally {
        running = null;
      }
    }
  };

  // ---- HTTP

  const body = async (req: IncomingMessage): Promise<Buffer> => {
    try {
      return await readBody(req, maxBodyBytes);
    } catch (e) {
      if (!(e instanceof BodyTooLargeError)) throw e;
      const size = e.declared === null ? '' : `${e.declared} bytes, `;
      throw new HttpError(413, `request body is ${size}more than this server's limit of ${maxBodyBytes} bytes (--max-body-bytes); send a shorter request`, 'invalid_request_error', null, 'request_too_large');
    }
  };

  const parseBody = (buf: Buffer): Body => {
    let value: unknown;
    try {
      value = JSON.parse(buf.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, `request body is not valid JSON (${(e as Error).message}); send one JSON object`, 'invalid_request_error', null, 'invalid_json');
    }
    if (!isObject(value)) throw new HttpError(400, `request body should be a JSON object, got ${typeName(value)}`, 'invalid_request_error', null, 'invalid_json');
    return value;
  };

  const authorized = (req: IncomingMessage): boolean => {
    if (options.apiKey === undefined) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && safeEqual(m[1]!.trim(), options.apiKey);
  };

  const modelObject = { id: modelName, object: 'model', created, owned_by: 'huatuo-webgpu' };

  const routes: Record<string, { methods: string[]; auth: boolean }> = {
    '/health': { methods: ['GET'], auth: false },
    '/v1/models': { methods: ['GET'], auth: true },
    '/v1/chat/completions': { methods: ['POST'], auth: true },
    '/v1/completions': { methods: ['POST'], auth: true },
  };

  let guard: AccessGuard | null = null;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    const modelPath = path.startsWith('/v1/models/') ? decodeURIComponent(path.slice('/v1/models/'.length)) : null;
    const route = routes[path] ?? (modelPath !== null ? { methods: ['GET'], auth: true } : undefined);
    const access = guard!.check(req, res, route?.methods ?? ['GET', 'POST']);
    if (access === 'preflight') return;
    if (access !== null) throw new HttpError(access.status, access.message, 'invalid_request_error', null, access.code);
    if (route === undefined) throw new HttpError(404, `no route ${req.method} ${path}; this server serves /v1/chat/completions, /v1/completions, /v1/models and /health`, 'invalid_request_error', null, 'unknown_url');
    if (!route.methods.includes(req.method ?? '')) {
      throw new HttpError(405, `${path} accepts ${route.methods.join(', ')}, not ${req.method}`, 'invalid_request_error', null, 'method_not_allowed', { allow: route.methods.join(', ') });
    }
    if (route.auth && !authorized(req)) {
      throw new HttpError(401, 'missing or wrong API key: send "Authorization: Bearer <key>" with the key the server was started with', 'authentication_error', null, 'invalid_api_key');
    }
    if (path === '/health') {
      sendJson(res, 200, { status: closing ? 'closing' : 'ok', model: modelName, running: running !== null, waiting: queue.length, max_queue: maxQueue });
      return;
    }
    if (path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data: [modelObject] });
      return;
    }
    if (modelPath !== null) {
      if (modelPath !== modelName) throw new HttpError(404, `The model \`${modelPath}\` does not exist; this server serves "${modelName}"`, 'invalid_request_error', 'model', 'model_not_found');
      sendJson(res, 200, modelObject);
      return;
    }
    const json = guard!.requireJson(req);
    if (json !== null) throw new HttpError(json.status, json.message, 'invalid_request_error', null, json.code);
    const request = parseBody(await body(req));
    const job = await (path === '/v1/chat/completions' ? chatJob(request, res) : completionJob(request, res));
    if (closing) throw new HttpError(503, 'the server is shutting down; retry against a running server', 'overloaded_error');
    if (queue.length >= maxQueue && (running !== null || queue.length > 0)) {
      emit({ type: 'rejected', id: job.id, waiting: queue.length, detail: 'queue full' });
      throw new HttpError(503, `the server is busy: ${queue.length} requests are waiting (--max-queue ${maxQueue}); retry after the Retry-After header's seconds`, 'overloaded_error', null, 'queue_full', { 'retry-after': retryAfter() });
    }
    res.on('close', () => {
      if (!res.writableFinished) job.cancelled = true;
    });
    queue.push(job);
    emit({ type: 'queued', id: job.id, waiting: queue.length });
    wake?.();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof HttpError ? e : new HttpError(500, `internal: ${(e as Error).message}`, 'server_error');
      if (err.status === 413) {
        // Stop reading the rest of an oversized body: answer, then close the connection.
        res.setHeader('connection', 'close');
        res.on('finish', () => req.destroy());
      }
      sendError(res, err);
      if (err.status !== 413) req.resume();
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as AddressInfo;
    guard = new AccessGuard({ host, address: bound.address, port: bound.port }, access);
  } catch (e) {
    await thread?.close();
    throw e;
  }
  idle = worker();
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${urlHost}:${address.port}`,
    host: address.address,
    port: address.port,
    async close() {
      if (closing) return idle;
      closing = true;
      server.close();
      for (const job of queue.splice(0)) {
        emit({ type: 'cancelled', id: job.id, waiting: 0, completionTokens: 0, detail: 'the server is shutting down' });
        sendError(job.res, new HttpError(503, 'the server is shutting down; retry against a running server', 'overloaded_error'));
      }
      if (running !== null) running.cancelled = true;
      wake?.();
      await idle;
      await thread?.close();
      server.closeAllConnections();
    },
  };
}
