// Generation through an OpenAI-compatible chat-completions endpoint: the
// Chinese prompt, the request with timeout and retries, and reply parsing.

import { ApiError } from './errors.js';
import type { CmekgRecord } from './graph.js';
import type { QaPair } from './templates.js';

/** System message sent with every request. */
export const SYSTEM_PROMPT = '你是一名严谨的医学数据标注专家，只依据给定的医学知识编写问答，不添加任何知识之外的内容。';

/**
 * The user prompt for one knowledge instance. The knowledge is embedded as a
 * fenced ```json block so that it can be read back from the request.
 * @example buildPrompt({ class: '疾病', 中心词: '高血压', 药物治疗: ['氨氯地平'] })
 */
export function buildPrompt(knowledge: CmekgRecord): string {
  const name = knowledge['中心词'];
  return [
    '下面是医学知识图谱中的一条知识（JSON 格式，"中心词"是实体名称，其余键是属性及其取值）：',
    '```json',
    JSON.stringify(knowledge),
    '```',
    '请严格依据且仅依据这条知识，编写一条医疗问答数据：',
    '1. 问题：以患者或家属的口吻提出一个自然的问题，可以描述自己的情况，但不要引入知识之外的医学事实；',
    `2. 回答：以医生的口吻回答，必须明确提到“${name}”，并具体引用上述知识中的属性取值；`,
    '3. 回答中不得出现知识之外的药物、剂量、检查、疗效或结论；',
    '4. 只输出一个 JSON 对象，格式为 {"question": "问题", "answer": "回答"}，不要输出任何其他文字。',
  ].join('\n');
}

/**
 * Read the knowledge back from a prompt made by {@link buildPrompt}, or undefined.
 * @example readPromptKnowledge(buildPrompt(k)) // k
 */
export function readPromptKnowledge(prompt: string): CmekgRecord | undefined {
  const m = /```json\n([\s\S]*?)\n```/.exec(prompt);
  if (m === null) return undefined;
  try {
    return JSON.parse(m[1] as string) as CmekgRecord;
  } catch {
    return undefined;
  }
}

/**
 * Parse a model reply into a question/answer pair. Accepts the JSON object alone,
 * inside a ```json fence, or surrounded by other text (the first balanced
 * {...} that parses is used); keys `question`/`answer` or `问题`/`回答`.
 * Returns undefined when no such object is found. Values may be empty strings;
 * emptiness is a separate check.
 */
export function parseModelReply(content: string): QaPair | undefined {
  const candidates: string[] = [content.trim()];
  const fence = /```(?:json)?\s*\n?([\s\S]*?)```/.exec(content);
  if (fence) candidates.push((fence[1] as string).trim());
  for (let start = content.indexOf('{'); start !== -1; start = content.indexOf('{', start + 1)) {
    let depth = 0;
    let inString = false;
    for (let i = start; i < content.length; i++) {
      const c = content[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{') depth++;
      else if (c === '}' && --depth === 0) {
        candidates.push(content.slice(start, i + 1));
        break;
      }
    }
  }
  for (const text of candidates) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    const rec = value as Record<string, unknown>;
    const question = rec['question'] ?? rec['问题'];
    const answer = rec['answer'] ?? rec['回答'];
    if (typeof question === 'string' && typeof answer === 'string') return { question: question.trim(), answer: answer.trim() };
  }
  return undefined;
}

/**
 * The chat-completions URL for an API base: a URL that already ends with
 * `/chat/completions` is used as is; otherwise `/chat/completions` is appended
 * (so `http://host:8000/v1` -> `http://host:8000/v1/chat/completions`).
 */
export function chatCompletionsUrl(apiUrl: string): string {
  const base = apiUrl.replace(/\/+$/, '');
  return base.endsWith('/chat/completions') ? base : `${base}/chat/completions`;
}

/** Settings of {@link ChatClient}. */
export interface ChatClientOptions {
  /** API base (see {@link chatCompletionsUrl}). */
  apiUrl: string;
  model: string;
  /** Bearer token; no Authorization header is sent when undefined. */
  apiKey: string | undefined;
  /** Per-attempt timeout. */
  timeoutMs: number;
  /** Retries after the first attempt on 408, 409, 429, 5xx, timeouts and network errors. */
  maxRetries: number;
  /** Backoff before retry i (0-based) is retryBaseMs * 2^i plus up to 50% jitter, unless retry-after-ms or Retry-After says otherwise. */
  retryBaseMs: number;
  /** Sampling temperature sent with each request. */
  temperature: number;
}

/** Outcome of one chat request after retries; a failure says what to change in `hint`. */
export type ChatResult =
  | { ok: true; content: string; attempts: number }
  | { ok: false; error: string; hint: string; attempts: number };

/** The longest wait a server may ask for; a longer one is replaced by the backoff, as the OpenAI SDKs do. */
const MAX_RETRY_AFTER_MS = 60_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The wait a response asks for before a retry, as the OpenAI SDKs read it: `retry-after-ms`
 * (milliseconds), else `Retry-After` (seconds or an HTTP date); undefined when absent, unreadable,
 * negative or over a minute.
 */
function retryAfterMs(headers: Headers): number | undefined {
  let ms: number | undefined;
  const millis = headers.get('retry-after-ms');
  if (millis !== null && !Number.isNaN(parseFloat(millis))) ms = parseFloat(millis);
  const after = headers.get('retry-after');
  if (ms === undefined && after !== null) ms = Number.isNaN(parseFloat(after)) ? Date.parse(after) - Date.now() : parseFloat(after) * 1000;
  return ms !== undefined && Number.isFinite(ms) && ms >= 0 && ms <= MAX_RETRY_AFTER_MS ? ms : undefined;
}

/**
 * Whether a failed response is worth retrying, as the OpenAI SDKs decide: the server's
 * `x-should-retry` when it says, else request timeout (408), lock timeout (409), rate limit (429) and
 * server errors (5xx).
 */
function shouldRetry(res: Response): boolean {
  const says = res.headers.get('x-should-retry');
  if (says === 'true') return true;
  if (says === 'false') return false;
  return res.status === 408 || res.status === 409 || res.status === 429 || res.status >= 500;
}

/** The OpenAI error object of a response body (`{"error": {"message", "code"}}`), or the body's start. */
function errorOf(text: string): { message: string; code: string | undefined } {
  try {
    const error = (JSON.parse(text) as { error?: unknown }).error;
    if (typeof error === 'string') return { message: error, code: undefined };
    if (typeof error === 'object' && error !== null) {
      const { message, code } = error as { message?: unknown; code?: unknown };
      if (typeof message === 'string') return { message, code: typeof code === 'string' ? code : undefined };
    }
  } catch {
    // not JSON: the text itself
  }
  return { message: text.slice(0, 200), code: undefined };
}

/** Whether a status refuses what one request asked (bad fields, a prompt past the context), not every request. */
function refusesThisRequest(status: number): boolean {
  return status === 400 || status === 413 || status === 422;
}

/** What to change when the server refuses a request's content. */
function refusalHint(status: number): string {
  return `the server refused the request (HTTP ${status}); if the prompt is longer than the model's context, lower --attributes-per-sample (shorter knowledge) or serve a model with a longer context`;
}

/** What to change after retries of a retryable failure ran out. */
function retryHint(status: number | undefined, timedOut: boolean): string {
  if (timedOut) return 'raise --timeout-ms (each attempt took longer), or lower --concurrency';
  if (status === undefined) return 'check that the server is up and --api-url is right';
  if (status === 429) return 'the server limits the request rate: lower --concurrency, or raise --max-retries / --retry-base-ms';
  if (status >= 500) return "the server failed (see its log); check that it is up, or raise --max-retries if it is overloaded";
  return 'raise --max-retries or lower --concurrency';
}

/**
 * A minimal OpenAI-compatible chat-completions client over fetch, with a per-attempt timeout and
 * the OpenAI SDKs' retry rules: 408, 409, 429, 5xx, timeouts and network errors are retried with
 * exponential backoff (or the wait retry-after-ms / Retry-After asks for); any other 4xx fails at once.
 * A refusal of the request's content (400, 413, 422) fails that request; one of the key, model or URL throws.
 * @example
 * const client = new ChatClient({ apiUrl: 'http://127.0.0.1:8000/v1', model: 'qwen', apiKey: undefined, timeoutMs: 60000, maxRetries: 4, retryBaseMs: 500, temperature: 0.7 });
 * const r = await client.complete([{ role: 'user', content: '你好' }]);
 */
export class ChatClient {
  readonly #options: ChatClientOptions;
  readonly #url: string;
  readonly #random: () => number;

  constructor(options: ChatClientOptions, random: () => number = Math.random) {
    this.#options = options;
    this.#url = chatCompletionsUrl(options.apiUrl);
    this.#random = random;
  }

  /** The URL requests are sent to. */
  get url(): string {
    return this.#url;
  }

  /**
   * Send one chat request. Resolves with the first choice's message content, or with the last
   * error and what to change: after all retries, or at once when the server refuses this request's
   * content (400, 413, 422). Throws {@link ApiError} with the server's message on another 4xx no
   * retry can fix (401, 403, 404, ...), which would fail every request alike.
   */
  async complete(messages: { role: 'system' | 'user' | 'assistant'; content: string }[]): Promise<ChatResult> {
    const { model, apiKey, timeoutMs, maxRetries, retryBaseMs, temperature } = this.#options;
    const body = JSON.stringify({ model, messages, temperature });
    let lastError = '';
    let lastStatus: number | undefined;
    let timedOut = false;
    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      let wait: number | undefined;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      try {
        const res = await fetch(this.#url, { method: 'POST', headers: this.#headers(true), body, signal: controller.signal });
        const text = await res.text();
        if (res.ok) {
          let content: unknown;
          try {
            const data = JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] };
            content = data.choices?.[0]?.message?.content;
          } catch {
            content = undefined;
          }
          if (typeof content !== 'string') {
            return { ok: false, error: `response body has no choices[0].message.content string: ${text.slice(0, 200)}`, hint: 'check --api-url: the server does not answer as an OpenAI chat-completions endpoint', attempts: attempt + 1 };
          }
          return { ok: true, content, attempts: attempt + 1 };
        }
        lastError = `HTTP ${res.status}: ${errorOf(text).message}`;
        lastStatus = res.status;
        timedOut = false;
        if (!shouldRetry(res)) {
          // A refusal of this request's content (a prompt past the context, say) fails this request only;
          // one of the key, model or URL (401, 403, 404, ...) fails every request alike.
          if (refusesThisRequest(res.status)) return { ok: false, error: lastError, hint: refusalHint(res.status), attempts: attempt + 1 };
          if (res.status >= 400 && res.status < 500) throw await this.#refusal(res.status, errorOf(text));
          return { ok: false, error: lastError, hint: retryHint(res.status, false), attempts: attempt + 1 };
        }
        wait = retryAfterMs(res.headers);
      } catch (e) {
        if (e instanceof ApiError) throw e;
        timedOut = controller.signal.aborted;
        lastStatus = undefined;
        lastError = timedOut ? `timed out after ${timeoutMs} ms` : `network error: ${(e as Error).message}`;
      } finally {
        clearTimeout(timer);
      }
      if (attempt < maxRetries) {
        await sleep(wait ?? retryBaseMs * 2 ** attempt * (1 + 0.5 * this.#random()));
      }
    }
    return { ok: false, error: lastError, hint: retryHint(lastStatus, timedOut), attempts: maxRetries + 1 };
  }

  #headers(json: boolean): Record<string, string> {
    const headers: Record<string, string> = json ? { 'content-type': 'application/json' } : {};
    const { apiKey } = this.#options;
    if (apiKey !== undefined && apiKey !== '') headers['authorization'] = `Bearer ${apiKey}`;
    return headers;
  }

  /** The error of a 4xx no retry can fix: the server's message and what to change. */
  async #refusal(status: number, error: { message: string; code: string | undefined }): Promise<ApiError> {
    const { model } = this.#options;
    let hint: string;
    if (status === 401) hint = 'the server wants an API key: set the variable named by --api-key-env (OPENAI_API_KEY by default) to it';
    else if (status === 403) hint = `the API key may not use --model ${model} or this endpoint; check the key in the variable named by --api-key-env and --model`;
    else if (status === 404 && (error.code === 'model_not_found' || /model/i.test(error.message))) {
      const served = await this.#servedModels();
      hint = served.length > 0 ? `pass the name the server serves: --model ${served.join(' or --model ')}` : `check --model (${model}): it must be a model the server serves (GET /v1/models lists them)`;
    } else if (status === 404) hint = 'check --api-url: the base ending in /v1, to which /chat/completions is added';
    else hint = 'the server refused the request; check --api-url and --model';
    return new ApiError(`${this.#url}: HTTP ${status}: ${error.message}; ${hint}`, status);
  }

  /** The model ids GET <base>/models lists, or none when it cannot be read. */
  async #servedModels(): Promise<string[]> {
    const url = this.#url.replace(/\/chat\/completions$/, '/models');
    try {
      const res = await fetch(url, { headers: this.#headers(false), signal: AbortSignal.timeout(this.#options.timeoutMs) });
      if (!res.ok) return [];
      const data = (await res.json()) as { data?: { id?: unknown }[] };
      return (data.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
    } catch {
      return [];
    }
  }
}
