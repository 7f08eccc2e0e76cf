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
  /** Retries after the first attempt on 429, 5xx, timeouts and network errors. */
  maxRetries: number;
  /** Backoff before retry i (0-based) is retryBaseMs * 2^i plus up to 50% jitter, unless Retry-After says otherwise. */
  retryBaseMs: number;
  /** Sampling temperature sent with each request. */
  temperature: number;
}

/** Outcome of one chat request after retries. */
export type ChatResult =
  | { ok: true; content: string; attempts: number }
  | { ok: false; error: string; attempts: number };

const FATAL_STATUS = new Set([401, 403, 404]);
const MAX_RETRY_AFTER_MS = 60_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(header);
  if (Number.isFinite(date)) return Math.min(Math.max(0, date - Date.now()), MAX_RETRY_AFTER_MS);
  return undefined;
}

/**
 * A minimal OpenAI-compatible chat-completions client over fetch, with a
 * per-attempt timeout and retries with exponential backoff.
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
   * Send one chat request. Resolves with the first choice's message content, or
   * with the last error after all retries. Throws {@link ApiError} on 401, 403
   * and 404, which no retry can fix.
   */
  async complete(messages: { role: 'system' | 'user' | 'assistant'; content: string }[]): Promise<ChatResult> {
    const { model, apiKey, timeoutMs, maxRetries, retryBaseMs, temperature } = this.#options;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (apiKey !== undefined && apiKey !== '') headers['authorization'] = `Bearer ${apiKey}`;
    const body = JSON.stringify({ model, messages, temperature });
    let lastError = '';
    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      let wait: number | undefined;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      try {
        const res = await fetch(this.#url, { method: 'POST', headers, body, signal: controller.signal });
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
            return { ok: false, error: `response body has no choices[0].message.content string: ${text.slice(0, 200)}`, attempts: attempt + 1 };
          }
          return { ok: true, content, attempts: attempt + 1 };
        }
        lastError = `HTTP ${res.status}: ${text.slice(0, 200)}`;
        if (FATAL_STATUS.has(res.status)) {
          throw new ApiError(`${this.#url}: ${lastError}; check --api-url (the base ending in /v1), --model and the API key variable named by --api-key-env`, res.status);
        }
        if (res.status !== 429 && res.status < 500) {
          return { ok: false, error: lastError, attempts: attempt + 1 };
        }
        wait = retryAfterMs(res.headers.get('retry-after'));
      } catch (e) {
        if (e instanceof ApiError) throw e;
        lastError = controller.signal.aborted ? `timed out after ${timeoutMs} ms` : `network error: ${(e as Error).message}`;
      } finally {
        clearTimeout(timer);
      }
      if (attempt < maxRetries) {
        await sleep(wait ?? retryBaseMs * 2 ** attempt * (1 + 0.5 * this.#random()));
      }
    }
    return { ok: false, error: lastError, attempts: maxRetries + 1 };
  }
}
