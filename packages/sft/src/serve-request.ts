// One OpenAI request read into what the queue runs: chat messages made into a prompt by the
// template (serve-chat.ts) or a raw completion prompt, its length checked against the context
// (characters first, then tokens), and the sampling settings with OpenAI's defaults and ranges.

import { randomBytes, randomInt } from 'node:crypto';
import { checkMemoryPlan, inferencePlan, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { deviceInfo } from '@huatuo/tensor';
import type { ChatTemplate } from './chat-template.js';
import type { PromptTemplate } from './prompt.js';
import type { EncodeText } from './chat-prompt.js';
import { chatPrompter, type ChatMessage } from './serve-chat.js';
import { HttpError } from './serve-errors.js';
import { bad, inRange, isBool, isInt, isInt64, isNumber, isObject, optional, parseStop, refuseUnsupported, typeName, type Body } from './serve-fields.js';
import { longestPieceChars } from './serve-limits.js';
import { MAX_LOGPROBS } from './serve-logprobs.js';

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

/** Most choices (n) a request may ask for unless the server is told otherwise: OpenAI's own limit is 128; memory bounds it first on most GPUs. */
export const DEFAULT_MAX_CHOICES = 16;

/** How one request samples. */
export interface Sampling {
  maxTokens: number;
  doSample: boolean;
  temperature: number;
  topP: number;
  topK: number;
  numBeams: number;
  repetitionPenalty: number;
  /** OpenAI's frequency_penalty and presence_penalty, applied as vLLM applies them; 0 is none. */
  frequencyPenalty: number;
  presencePenalty: number;
  /** OpenAI's logit_bias (token id -> bias, clamped to [-100, 100] as vLLM clamps it); empty for none. */
  logitBias: ReadonlyMap<number, number>;
  stop: string[];
  /** vLLM's include_stop_str_in_output: the stop string that ends a choice stays in its text, and streams hold nothing back. */
  includeStop: boolean;
  /** The first choice's seed (unsigned 32-bit); choice i samples with seed + i, as vLLM seeds its n sequences. */
  seed: number;
  /** OpenAI's n: choices generated together, as one batch of the prompt repeated. */
  n: number;
  /**
   * Completions' best_of (>= n): sequences generated, of which the n of the highest cumulative log-probability
   * (under the distributions sampled from, as vLLM's V0 engine ranks them) are returned.
   */
  bestOf: number;
}

/** A request read and checked, ready to queue. */
export interface JobRequest {
  /** The response id (chatcmpl-... or cmpl-...). */
  id: string;
  kind: 'chat' | 'completion';
  created: number;
  prompt: number[];
  /** Text before the completion (completions with echo). */
  echo: string;
  /** Whether the reply is stripped as HuaTuo's get_response strips it (chats under a HuaTuo template). */
  strip: boolean;
  sampling: Sampling;
  stream: boolean;
  /**
   * A stream asked for a reply answered whole (completions with best_of above n): the reply goes as one event, then
   * [DONE], as vLLM's fake_stream_generator sends it, so that a streaming client reads it as a stream.
   */
  streamWhole: boolean;
  /** stream_options.include_usage: a last chunk with the usage. */
  includeUsage: boolean;
  /** stream_options.continuous_usage_stats (with include_usage): every chunk carries its choice's usage so far. */
  continuousUsage: boolean;
  /** Log-probabilities asked for: how many most likely tokens go beside each token's own (chat's top_logprobs, completions' logprobs), or null for none. */
  logprobs: number | null;
  /**
   * vLLM's prompt_logprobs (completions): each prompt token's log-probability, rank and this many most likely
   * tokens, in every choice of a reply not streamed; null for none (and when streaming, which has no such field).
   */
  promptLogprobs: number | null;
  /** Completions with echo: the prompt's tokens come first in the reply (and in its logprobs). */
  echoPrompt: boolean;
  /** Completions with echo and max_tokens 0 (as vLLM allows): the prompt is scored and nothing generated. */
  echoOnly: boolean;
}

/** What {@link createRequestReader} reads requests against. */
export interface RequestReaderOptions {
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** A HuaTuo prompt template, or the model's own Jinja chat template. */
  template: PromptTemplate | ChatTemplate;
  modelName: string;
  defaults: ServeGenerationDefaults;
  maxTokensLimit: number;
  /** Most choices (n) one request may ask for. Default {@link DEFAULT_MAX_CHOICES}. */
  maxChoices?: number;
  /** Token ids of a prompt text, BOS first when asked (on a worker thread, or the tokenizer itself). */
  encode: EncodeText;
  /**
   * Called with a request's id once its fields are checked, before its prompt is rendered and tokenized: throws the
   * HttpError to answer instead (the queue is full), so that refusing it costs no tokenizing.
   */
  admit?: (id: string) => void;
}

/**
 * Text of a message's content: a string, or an array of {type: 'text', text} parts joined by newlines, empty
 * parts left out, as vLLM joins them for a chat template that takes the content as a string.
 */
function messageText(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v
      .map((part, j) => {
        if (!isObject(part) || part['type'] !== 'text' || typeof part['text'] !== 'string') {
          throw new HttpError(400, `${where}[${j}]: expected a text part {"type": "text", "text": "..."}, got ${typeName(part)}; only text content is supported`);
        }
        return part['text'];
      })
      .filter((text) => text !== '')
      .join('\n');
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
      throw new HttpError(400, `messages[${i}].role: expected "system", "developer", "user" or "assistant", got ${typeName(role)} (tools are not supported)`);
    }
    return { role, content: messageText(m['content'], `messages[${i}].content`) };
  });
}

/**
 * OpenAI's logit_bias: an object of token ids (as strings) to biases, each bias clamped to [-100, 100]
 * as vLLM clamps it; an id outside the vocabulary is refused as vLLM refuses it.
 */
function parseLogitBias(body: Body, V: number): Map<number, number> {
  const raw = optional(body, 'logit_bias', isObject, 'an object of token ids to biases, e.g. {"50256": -100}');
  const bias = new Map<number, number>();
  for (const [key, v] of Object.entries(raw ?? {})) {
    if (!/^\s*[+-]?\d+\s*$/.test(key)) throw new HttpError(400, `logit_bias: key ${JSON.stringify(key).slice(0, 40)} is not a token id; the keys are token ids as strings, e.g. "50256"`);
    if (!isNumber(v)) throw bad(`logit_bias[${JSON.stringify(key)}]`, 'a number (OpenAI: from -100 to 100)', v);
    const id = Number(key);
    if (!(id >= 0 && id < V)) throw new HttpError(400, `logit_bias: token id ${key.trim()} is outside this model's vocabulary [0, ${V}); use ids of its tokenizer`);
    bias.set(id, Math.min(100, Math.max(-100, v)));
  }
  return bias;
}

/**
 * vLLM's prompt_logprobs, refused where vLLM refuses it (a negative other than -1, more than its max_logprobs,
 * which -1, the whole vocabulary, is; above 0 with stream). Streamed, 0 is accepted and returns nothing.
 */
function parsePromptLogprobs(body: Body, stream: boolean, V: number): number | null {
  const k = optional(body, 'prompt_logprobs', isInt, 'an integer (the most likely tokens returned beside each prompt token)');
  if (k === undefined) return null;
  if (k < -1) throw new HttpError(400, `prompt_logprobs: expected an integer from 0 to ${MAX_LOGPROBS} (or -1, the whole vocabulary), got ${k}`);
  if (stream && k !== 0) throw new HttpError(400, 'prompt_logprobs: not available with "stream": true (as in vLLM); send "stream": false, or leave prompt_logprobs out');
  if (k > MAX_LOGPROBS || k === -1) {
    const asked = k === -1 ? `-1 asks for the whole vocabulary (${V} tokens), ` : `${k} is `;
    throw new HttpError(400, `prompt_logprobs: ${asked}more than this server's max of ${MAX_LOGPROBS} (vLLM's max_logprobs); ask for at most ${MAX_LOGPROBS}`);
  }
  return stream ? null : k;
}

/** Log-probabilities come from greedy decoding and sampling; beam search does not return them. */
function refuseBeamLogprobs(s: Pick<Sampling, 'numBeams'>, param: string): void {
  if (s.numBeams > 1) throw new HttpError(400, `${param}: returned by sampling and greedy decoding, not by beam search (num_beams ${s.numBeams}); send num_beams 1 or leave ${param} out`);
}

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

/** Reads /v1/chat/completions and /v1/completions bodies into {@link JobRequest}s, or throws the HttpError to answer. */
export function createRequestReader(o: RequestReaderOptions): { chat: (body: Body) => Promise<JobRequest>; completion: (body: Body) => Promise<JobRequest> } {
  const { model, tokenizer, template, modelName, defaults, maxTokensLimit, encode } = o;
  const admit = o.admit ?? (() => {});
  const maxChoices = o.maxChoices ?? DEFAULT_MAX_CHOICES;
  const context = model.maxModelLen;
  const contextSource = model.maxModelLenSource;
  const prompter = chatPrompter(template, tokenizer, encode);
  // A prompt longer than this many characters cannot fit the context, whatever its tokens.
  const maxPromptChars = context * longestPieceChars(tokenizer);
  const checkPromptChars = (text: string, param: string): void => {
    if (text.length <= maxPromptChars) return;
    throw new HttpError(
      400,
      `the prompt is ${text.length} characters, more than this model's context of ${context} tokens (${contextSource}) can hold: no token of its tokenizer is longer than ${maxPromptChars / context} characters, so at most ${maxPromptChars} fit; shorten the ${param === 'prompt' ? 'prompt' : 'messages'}`,
    );
  };

  // A request's sampling fields are checked before its prompt is tokenized (and before the queue may refuse it), then
  // fitted to the prompt's tokens: the context left, and the device's memory.
  const sampling = (body: Body, extraStops: readonly string[], kind: 'chat' | 'completion'): { numBeams: number; fit: (promptTokens: number) => Sampling } => {
    const n = optional(body, 'n', isInt, 'an integer') ?? 1;
    if (n < 1) throw new HttpError(400, `n: expected an integer of at least 1 (the choices to generate), got ${n}`);
    if (n > maxChoices) throw new HttpError(400, `n: ${n} choices asked for, more than this server's limit of ${maxChoices} (--max-choices); ask for at most ${maxChoices} or send several requests`);
    const bestOf = optional(body, 'best_of', isInt, 'an integer') ?? n;
    if (bestOf !== n && kind === 'chat') throw new HttpError(400, `best_of: taken by /v1/completions, not by chat completions (got ${bestOf}); send n for several choices, all returned, or the rendered prompt to /v1/completions`);
    // vLLM's V0 engine (best_of must be >= n); its V1 engine refuses best_of.
    if (bestOf < n) throw new HttpError(400, `best_of: ${bestOf} is below n ${n}; best_of sequences are generated and the n most likely returned, so send best_of >= n`);
    if (bestOf > maxChoices) throw new HttpError(400, `best_of: ${bestOf} sequences asked for, more than this server's limit of ${maxChoices} (--max-choices); ask for at most ${maxChoices}`);
    const maxCompletion = inRange(body, 'max_completion_tokens', 1, maxTokensLimit, true);
    const maxTokensField = inRange(body, 'max_tokens', 1, maxTokensLimit, true);
    const asked = maxCompletion ?? maxTokensField;
    const askedParam = maxCompletion !== undefined ? 'max_completion_tokens' : 'max_tokens';
    const temperature = inRange(body, 'temperature', 0, 2, false) ?? defaults.temperature;
    const topP = inRange(body, 'top_p', 0, 1, false) ?? defaults.topP;
    const topK = inRange(body, 'top_k', 0, model.config.vocabSize, true) ?? defaults.topK;
    const numBeams = inRange(body, 'num_beams', 1, 16, true) ?? defaults.numBeams;
    if (n > 1 && numBeams > 1) throw new HttpError(400, `n: several choices come from sampling or greedy decoding, not beam search (num_beams ${numBeams}); send num_beams 1 or n 1`);
    const repetitionPenalty = inRange(body, 'repetition_penalty', 0.01, 10, false) ?? defaults.repetitionPenalty;
    // OpenAI's range; vLLM's beam search does not apply them, so beams refuse them rather than ignore them.
    const penalty = (key: string): number => {
      const v = inRange(body, key, -2, 2, false) ?? 0;
      if (v !== 0 && numBeams > 1) throw new HttpError(400, `${key}: applies to sampling and greedy decoding, not to beam search (num_beams ${numBeams}); send num_beams 1 or leave ${key} out`);
      return v;
    };
    const frequencyPenalty = penalty('frequency_penalty');
    const presencePenalty = penalty('presence_penalty');
    const logitBias = parseLogitBias(body, model.config.vocabSize);
    if (logitBias.size > 0 && numBeams > 1) throw new HttpError(400, `logit_bias: applies to sampling and greedy decoding, not to beam search (num_beams ${numBeams}); send num_beams 1 or leave logit_bias out`);
    const doSample = numBeams === 1 && temperature > 0 && topP > 0 && topK !== 1;
    // vLLM's V0 engine: "best_of must be 1 when using greedy sampling".
    if (bestOf > n && !doSample) throw new HttpError(400, `best_of: ${bestOf} above n ${n} ranks samples, and ${numBeams > 1 ? `beam search (num_beams ${numBeams})` : 'greedy decoding (temperature 0, or top_k 1)'} makes one sequence; sample (temperature above 0, num_beams 1) or send best_of equal to n`);
    const seed = optional(body, 'seed', isInt64, 'an integer from -2^63 to 2^63 - 1') ?? randomInt(2 ** 31);
    const stop = [...parseStop(body), ...extraStops];
    const includeStop = optional(body, 'include_stop_str_in_output', isBool, 'a boolean') ?? false;
    const fit = (promptTokens: number): Sampling => {
      const left = context - promptTokens;
      if (left < 1) {
        throw new HttpError(400, `the prompt is ${promptTokens} tokens, and this model's context is ${context} tokens (${contextSource}), leaving no room for an answer; shorten the messages`);
      }
      if (asked !== undefined && asked > left) {
        throw new HttpError(
          400,
          `the prompt is ${promptTokens} tokens and ${askedParam} asks for ${asked} more, beyond this model's context of ${context} tokens; ask for at most ${left} or shorten the prompt`,
        );
      }
      let maxTokens = asked ?? Math.min(defaults.maxTokens, maxTokensLimit, left);
      // The best_of choices decode together: best_of sequences of the cache.
      const sequences = numBeams * bestOf;
      const refusal = memoryRefusal(sequences, promptTokens + maxTokens);
      if (refusal !== null) {
        if (bestOf > 1 && memoryRefusal(numBeams, promptTokens + 1) === null && memoryRefusal(sequences, promptTokens + 1) !== null) {
          const param = bestOf > n ? 'best_of' : 'n';
          throw new HttpError(400, `${param}: ${bestOf} choices of a prompt of ${promptTokens} tokens do not fit the GPU: ${refusal}; ask for fewer choices`);
        }
        if (asked !== undefined) throw new HttpError(400, `${askedParam} ${asked} with a prompt of ${promptTokens} tokens${n > 1 ? ` and n ${n}` : ''} does not fit the GPU: ${refusal}`);
        // No length asked for: the longest answer that fits.
        let lo = 0;
        for (let hi = maxTokens; hi - lo > 1; ) {
          const mid = (lo + hi) >> 1;
          if (memoryRefusal(sequences, promptTokens + mid) === null) lo = mid;
          else hi = mid;
        }
        if (lo === 0) throw new HttpError(400, `a prompt of ${promptTokens} tokens does not fit the GPU: ${refusal}; shorten the messages`);
        maxTokens = lo;
      }
      return {
        maxTokens,
        doSample,
        temperature: temperature > 0 ? temperature : 1,
        topP: topP > 0 ? topP : 1,
        topK,
        numBeams,
        repetitionPenalty,
        frequencyPenalty,
        presencePenalty,
        logitBias,
        stop,
        includeStop,
        seed: Number(BigInt.asUintN(32, BigInt(seed))),
        n,
        bestOf,
      };
    };
    return { numBeams, fit };
  };

  /** Why a generation of `length` tokens (prompt included) on `beams` sequences cannot fit the device, or null. */
  const memoryRefusal = (beams: number, length: number): string | null => {
    const info = deviceInfo();
    if (info === null) return null;
    try {
      checkMemoryPlan(inferencePlan(model, beams, length), info, `${beams} sequence(s) of ${length} tokens`);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  };

  const checkModel = (body: Body): void => {
    const m = body['model'];
    if (m === undefined || m === null) throw new HttpError(400, `model: missing; name the model to use, "${modelName}" on this server (see GET /v1/models)`);
    if (typeof m !== 'string') throw bad('model', `a string (this server serves "${modelName}")`, m);
    if (m !== modelName) throw new HttpError(404, `The model \`${m}\` does not exist; this server serves "${modelName}" (see GET /v1/models)`);
  };

  // vLLM's StreamOptions: include_usage true unless given (null is false), continuous_usage_stats false; the
  // per-chunk usage only with the final one.
  const streamOptions = (body: Body, stream: boolean): { includeUsage: boolean; continuousUsage: boolean } => {
    const so = optional(body, 'stream_options', isObject, 'an object {include_usage, continuous_usage_stats}');
    if (so === undefined) return { includeUsage: false, continuousUsage: false };
    if (!stream) throw new HttpError(400, 'stream_options: only allowed with "stream": true');
    const includeUsage = 'include_usage' in so ? (optional(so, 'include_usage', isBool, 'a boolean') ?? false) : true;
    const continuousUsage = includeUsage && (optional(so, 'continuous_usage_stats', isBool, 'a boolean') ?? false);
    return { includeUsage, continuousUsage };
  };

  const chat = async (body: Body): Promise<JobRequest> => {
    checkModel(body);
    refuseUnsupported(body, ['tools', 'functions', 'tool_choice', 'function_call', 'audio', 'prediction']);
    if (body['prompt_logprobs'] !== undefined && body['prompt_logprobs'] !== null) {
      throw new HttpError(400, 'prompt_logprobs: returned by /v1/completions on this server, not by chat completions; send the rendered prompt there, or leave prompt_logprobs out');
    }
    const wantLogprobs = optional(body, 'logprobs', isBool, 'a boolean') ?? false;
    const top = inRange(body, 'top_logprobs', 0, MAX_LOGPROBS, true);
    if (top !== undefined && !wantLogprobs) throw new HttpError(400, 'top_logprobs: needs "logprobs": true; send both or leave top_logprobs out');
    const rf = body['response_format'];
    if (rf !== undefined && rf !== null && !(isObject(rf) && rf['type'] === 'text')) {
      // Named by its type alone: writing a value back whole overflows the stack on one nested thousands of levels deep.
      const got = isObject(rf) ? `an object of type ${typeName(rf['type'])}` : typeName(rf);
      throw new HttpError(400, `response_format: only {"type": "text"} is supported, got ${got}`);
    }
    const messages = parseMessages(body);
    const stream = optional(body, 'stream', isBool, 'a boolean') ?? false;
    const fields = sampling(body, prompter.stops, 'chat');
    const logprobs = wantLogprobs ? (top ?? 0) : null;
    if (logprobs !== null) refuseBeamLogprobs(fields, 'logprobs');
    const usageOptions = streamOptions(body, stream);
    const id = newId('chatcmpl');
    admit(id);
    const promptText = prompter.text(messages);
    checkPromptChars(promptText, 'messages');
    const prompt = await prompter.ids(promptText);
    const s = fields.fit(prompt.length);
    return {
      id,
      kind: 'chat',
      created: Math.floor(Date.now() / 1000),
      prompt,
      echo: '',
      strip: prompter.strip,
      sampling: s,
      stream,
      streamWhole: false,
      ...usageOptions,
      logprobs,
      promptLogprobs: null,
      echoPrompt: false,
      echoOnly: false,
    };
  };

  const completion = async (body: Body): Promise<JobRequest> => {
    checkModel(body);
    refuseUnsupported(body, ['suffix']);
    // Unlike chat's boolean, legacy logprobs 0 still asks for the sampled tokens' log probabilities.
    const logprobs = inRange(body, 'logprobs', 0, MAX_LOGPROBS, true) ?? null;
    const id = newId('cmpl');
    let raw = body['prompt'];
    if (Array.isArray(raw) && raw.length === 1 && (typeof raw[0] === 'string' || Array.isArray(raw[0]))) raw = raw[0];
    let promptText: string | null = null;
    let promptIds: number[] | null = null;
    if (typeof raw === 'string') {
      if (raw === '') throw new HttpError(400, 'prompt: is empty; give the text to continue');
      checkPromptChars(raw, 'prompt');
      promptText = raw;
    } else if (Array.isArray(raw) && raw.length > 0 && raw.every((t) => Number.isInteger(t) && (t as number) >= 0 && (t as number) < model.config.vocabSize)) {
      promptIds = raw as number[];
    } else {
      throw bad('prompt', `a non-empty string, or one array of token ids in [0, ${model.config.vocabSize}) (one prompt per request)`, raw);
    }
    const stream = optional(body, 'stream', isBool, 'a boolean') ?? false;
    const echo = optional(body, 'echo', isBool, 'a boolean') ?? false;
    // vLLM scores an echoed prompt without generating when max_tokens is 0.
    const echoOnly = echo && body['max_tokens'] === 0;
    const promptLogprobs = parsePromptLogprobs(body, stream, model.config.vocabSize);
    const fields = sampling(echoOnly ? { ...body, max_tokens: 1 } : body, [], 'completion');
    const usageOptions = streamOptions(body, stream);
    if (logprobs !== null) refuseBeamLogprobs(fields, 'logprobs');
    if (promptLogprobs !== null) refuseBeamLogprobs(fields, 'prompt_logprobs');
    admit(id);
    const prompt = promptText === null ? promptIds! : await encode(promptText, true);
    // An echoed prompt's text; token ids are decoded only for an echo, once the request is known to fit.
    const text = (): string => promptText ?? tokenizer.decode(prompt, { skipSpecialTokens: true });
    const s = fields.fit(prompt.length);
    return {
      id,
      kind: 'completion',
      created: Math.floor(Date.now() / 1000),
      prompt,
      echo: echo ? text() : '',
      strip: false,
      sampling: echoOnly ? { ...s, maxTokens: 0 } : s,
      // As vLLM, best_of above n is answered whole, not streamed token by token: the choices are known at the end.
      stream: stream && s.bestOf === s.n,
      streamWhole: stream && s.bestOf !== s.n,
      // The whole reply has no usage chunks.
      ...(s.bestOf === s.n ? usageOptions : { includeUsage: false, continuousUsage: false }),
      logprobs,
      promptLogprobs,
      echoPrompt: echo,
      echoOnly,
    };
  };

  return { chat, completion };
}
