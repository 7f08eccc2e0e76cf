// An OpenAI-compatible HTTP server for a LLaMA (plus adapter) on plain node:http:
// /v1/chat/completions (HuaTuo's prompt template or the model's chat template), /v1/completions,
// /v1/models and /health, behind @huatuo/http's Host, Origin and content-type checks. Reading
// requests, the queue and the replies live in serve-request.ts, serve-queue.ts and serve-reply.ts.

import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AccessConfigError, AccessGuard, BodyTooLargeError, normalizeAllowedHosts, normalizeCorsOrigins, readBody, sendJson } from '@huatuo/http';
import type { LlamaModel, Tokenizer } from '@huatuo/llama';
import { ConfigError } from './errors.js';
import type { EncodeText } from './chat-prompt.js';
import type { ChatTemplate } from './chat-template.js';
import type { PromptTemplate } from './prompt.js';
import { HttpError, PreRouteError, sendError } from './serve-errors.js';
import { isObject, typeName, type Body } from './serve-fields.js';
import { JobQueue, type ServeEvent } from './serve-queue.js';
import { keepStreamAlive, reply } from './serve-reply.js';
import { createRequestReader, DEFAULT_MAX_CHOICES, DEFAULT_SERVE_GENERATION, type ServeGenerationDefaults } from './serve-request.js';

export { DEFAULT_MAX_CHOICES };
import { TokenizerThread } from './tokenize-thread.js';

/** Options of {@link startServer}. */
export interface ServeOptions {
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** Template that turns a chat into a prompt: a HuaTuo template (med_template, usually) or the model's Jinja chat template ({@link loadChatTemplate}). */
  template: PromptTemplate | ChatTemplate;
  /** The id served at /v1/models; requests must name it. */
  modelName: string;
  /** What the model was loaded from (the base model's folder or name), the model card's root as vLLM's is its --model. Default `modelName`. */
  modelRoot?: string;
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
  /** Most new tokens one request may ask for. Default the model's context, `model.maxModelLen` (config.json's max_position_embeddings stretched by rope_scaling, or --max-model-len). */
  maxTokensLimit?: number;
  /** Most choices (OpenAI's n) one request may ask for; they decode as one batch, and a request whose n sequences do not fit the GPU is refused. Default {@link DEFAULT_MAX_CHOICES}. */
  maxChoices?: number;
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
  /** The worker thread loads tokenizerDir's tokenizer.json trusting its patterns, as `tokenizer` was loaded (`--trust-tokenizer-patterns`). */
  trustTokenizerPatterns?: boolean;
  /**
   * Milliseconds a streamed reply may go without an event (waiting in the queue, or on a long prefill) before
   * an SSE comment line keeps proxies from cutting it; 0: none. Default 15000.
   */
  streamKeepAliveMs?: number;
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

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The path of a request target, with repeated slashes merged and any trailing one dropped: a
 * base URL written with a trailing slash gives `//v1/chat/completions`, which is not read as a
 * host (`new URL` would) but as the route it means, as reverse proxies merge slashes.
 */
function routePath(target: string): string {
  let path = target.split(/[?#]/, 1)[0]!;
  // The absolute form (http://host/path), which HTTP/1.1 servers must accept too.
  if (!path.startsWith('/') && URL.canParse(target)) path = new URL(target).pathname;
  return path.replace(/\/{2,}/g, '/').replace(/\/$/, '') || '/';
}

/** The model id of /v1/models/{id}, percent-decoded; an id that does not decode matches no model. */
function modelId(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

/** Default of {@link ServeOptions.streamKeepAliveMs}: well inside the 60 s idle timeout common to reverse proxies and load balancers. */
export const DEFAULT_STREAM_KEEP_ALIVE_MS = 15_000;
/** The longest delay a node timer takes (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

// HEAD goes with GET (node sends the headers alone), as uptime monitors and `curl -I` ask.
const ROUTES: Record<string, { methods: string[] }> = {
  '/health': { methods: ['GET', 'HEAD'] },
  '/v1/models': { methods: ['GET', 'HEAD'] },
  '/v1/chat/completions': { methods: ['POST'] },
  '/v1/completions': { methods: ['POST'] },
};

/**
 * Serves a model (with any LoRA adapter already applied) behind OpenAI's API:
 * POST /v1/chat/completions, POST /v1/completions, GET (and HEAD) /v1/models, /v1/models/{id}
 * and /health. Chat messages fill a HuaTuo prompt template (see {@link chatToInstruction}) and
 * the reply is the text after the template's response marker; with a Jinja chat template they
 * are rendered as transformers' apply_chat_template renders them (add_generation_prompt; developer
 * messages as system messages unless the template names that role) and the reply is what the
 * model writes until its EOS. Completions continue the raw prompt. Requests run one at a time in arrival order; beyond `maxQueue` waiting ones the
 * server answers 503 with Retry-After. Sampling follows OpenAI: temperature (0 is greedy),
 * top_p, frequency_penalty, presence_penalty and logit_bias (as vLLM applies them; not with beams), seed, stop (kept in the text with vLLM's include_stop_str_in_output),
 * max_tokens / max_completion_tokens, n (up to `maxChoices`, decoded as one batch whose prompt step runs once, choice i seeded with seed + i as vLLM seeds them; not with beams), best_of >= n on completions (the n of best_of samples of the highest cumulative log-probability, as vLLM's V0 engine; a stream gets the whole reply as one event, as vLLM sends it); logprobs as vLLM returns them (serve-logprobs.ts), and vLLM's prompt_logprobs on completions; the extensions
 * `num_beams` (beam search, which ignores temperature, top_p and seed), `top_k` and
 * `repetition_penalty` are accepted too. A streaming client that disconnects stops its
 * generation at the next token; a stream silent for `streamKeepAliveMs` (queued, or on a long
 * prefill) gets an SSE comment line, which clients skip, so that proxies keep it open.
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
  const maxTokensLimit = options.maxTokensLimit ?? model.maxModelLen;
  const maxChoices = options.maxChoices ?? DEFAULT_MAX_CHOICES;
  const keepAliveMs = options.streamKeepAliveMs ?? DEFAULT_STREAM_KEEP_ALIVE_MS;
  const defaults: ServeGenerationDefaults = { ...DEFAULT_SERVE_GENERATION, ...options.defaultGeneration };
  if (!Number.isSafeInteger(maxQueue) || maxQueue < 0) throw new ConfigError('--max-queue', `startServer: maxQueue should be an integer >= 0, got ${maxQueue}`);
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) throw new ConfigError('--max-body-bytes', `startServer: maxBodyBytes should be a positive integer, got ${maxBodyBytes}`);
  if (!Number.isSafeInteger(maxTokensLimit) || maxTokensLimit < 1) throw new ConfigError('--max-tokens-limit', `startServer: maxTokensLimit should be a positive integer, got ${maxTokensLimit}`);
  if (!Number.isSafeInteger(maxChoices) || maxChoices < 1) throw new ConfigError('--max-choices', `startServer: maxChoices should be a positive integer, got ${maxChoices}`);
  if (!Number.isSafeInteger(defaults.maxTokens) || defaults.maxTokens < 1) throw new ConfigError('--default-max-tokens', `startServer: defaultGeneration.maxTokens should be a positive integer, got ${defaults.maxTokens}`);
  if (!Number.isSafeInteger(keepAliveMs) || keepAliveMs < 0 || keepAliveMs > MAX_TIMER_MS) {
    throw new ConfigError('--stream-keep-alive-ms', `startServer: streamKeepAliveMs should be an integer in [0, ${MAX_TIMER_MS}] (0: no keep-alive comments), got ${keepAliveMs}`);
  }
  const access = { allowedHosts: options.allowedHosts ?? [], corsOrigins: options.corsOrigins ?? [] };
  try {
    normalizeAllowedHosts(access.allowedHosts);
    normalizeCorsOrigins(access.corsOrigins);
  } catch (e) {
    if (e instanceof AccessConfigError) throw new ConfigError(e.option === 'allowedHosts' ? '--allowed-hosts' : '--cors-origin', e.message);
    throw e;
  }
  const created = Math.floor(Date.now() / 1000);
  // vLLM's ModelCard (protocol.py 0052bed), as OpenAIServingModels.show_available_models fills a base model's: root
  // the model it was loaded from, parent null, the context length as max_model_len, and one default ModelPermission,
  // made anew for each answer as vLLM's default factories make it.
  const modelCard = () => ({
    id: modelName,
    object: 'model',
    created,
    owned_by: 'huatuo-webgpu',
    root: options.modelRoot ?? modelName,
    parent: null,
    max_model_len: model.maxModelLen,
    permission: [
      {
        id: `modelperm-${randomUUID().replaceAll('-', '')}`,
        object: 'model_permission',
        created: Math.floor(Date.now() / 1000),
        allow_create_engine: false,
        allow_sampling: true,
        allow_logprobs: true,
        allow_search_indices: false,
        allow_view: true,
        allow_fine_tuning: false,
        organization: '*',
        group: null,
        is_blocking: false,
      },
    ],
  });
  const thread = options.tokenizerDir === undefined ? null : await TokenizerThread.start(options.tokenizerDir, tokenizer, 'tokenizerDir', { trustTokenizerPatterns: options.trustTokenizerPatterns ?? false });
  const encode: EncodeText = (text, specialTokens) => {
    const options = specialTokens ? {} : { addBos: false, addEos: false };
    return thread === null ? Promise.resolve(tokenizer.encode(text, options)) : thread.encode(text, options);
  };
  let read: ReturnType<typeof createRequestReader>;
  try {
    // A request the queue would refuse is refused before its prompt is rendered and tokenized.
    read = createRequestReader({ model, tokenizer, template, modelName, defaults, maxTokensLimit, maxChoices, encode, admit: (id) => queue.admit(id) });
  } catch (e) {
    // The worker would keep the process alive after the error.
    await thread?.close();
    throw e;
  }
  const queue = new JobQueue(maxQueue, (job) => reply(job, model, tokenizer, modelName), (e) => options.onEvent?.(e));
  let guard: AccessGuard | null = null;

  const body = async (req: IncomingMessage): Promise<Buffer> => {
    try {
      return await readBody(req, maxBodyBytes);
    } catch (e) {
      if (!(e instanceof BodyTooLargeError)) throw e;
      const size = e.declared === null ? '' : `${e.declared} bytes, `;
      throw new HttpError(413, `request body is ${size}more than this server's limit of ${maxBodyBytes} bytes (--max-body-bytes); send a shorter request`);
    }
  };

  const parseBody = (buf: Buffer): Body => {
    let value: unknown;
    try {
      value = JSON.parse(buf.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, `request body is not valid JSON (${(e as Error).message}); send one JSON object`);
    }
    if (!isObject(value)) throw new HttpError(400, `request body should be a JSON object, got ${typeName(value)}`);
    return value;
  };

  const authorized = (req: IncomingMessage): boolean => {
    if (options.apiKey === undefined) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && safeEqual(m[1]!.trim(), options.apiKey);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = routePath(req.url ?? '/');
    const modelPath = path.startsWith('/v1/models/') ? modelId(path.slice('/v1/models/'.length)) : null;
    const route = ROUTES[path] ?? (modelPath !== null ? ROUTES['/v1/models'] : undefined);
    const verdict = guard!.check(req, res, route?.methods ?? ['GET', 'POST']);
    if (verdict === 'preflight') return;
    if (verdict !== null) throw new HttpError(verdict.status, verdict.message);
    // A page reads only safelisted headers of a cross-origin reply unless told: the openai client
    // waits Retry-After before retrying a 503, and reports x-request-id.
    if (res.hasHeader('access-control-allow-origin')) res.setHeader('access-control-expose-headers', 'retry-after, x-request-id');
    // vLLM's --api-key middleware runs before routing: every /v1 path but an OPTIONS request needs the key, known
    // route or not. FastAPI then answers a route or method it does not serve.
    if (path.startsWith('/v1') && req.method !== 'OPTIONS' && !authorized(req)) throw new PreRouteError(401, { error: 'Unauthorized' });
    if (route === undefined) throw new PreRouteError(404, { detail: 'Not Found' });
    if (!route.methods.includes(req.method ?? '')) throw new PreRouteError(405, { detail: 'Method Not Allowed' }, { allow: route.methods.join(', ') });
    if (path === '/health') {
      const s = queue.status();
      sendJson(res, 200, { status: s.closing ? 'closing' : 'ok', model: modelName, running: s.running, waiting: s.waiting, max_queue: maxQueue });
      return;
    }
    if (path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data: [modelCard()] });
      return;
    }
    if (modelPath !== null) {
      if (modelPath !== modelName) throw new HttpError(404, `The model \`${modelPath}\` does not exist; this server serves "${modelName}"`);
      sendJson(res, 200, modelCard());
      return;
    }
    const json = guard!.requireJson(req);
    if (json !== null) throw new HttpError(json.status, json.message);
    const request = parseBody(await body(req));
    const job = { ...(await (path === '/v1/chat/completions' ? read.chat(request) : read.completion(request))), res, cancelled: false, tokens: 0 };
    queue.push(job);
    if (job.stream && keepAliveMs > 0) keepStreamAlive(job, keepAliveMs);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof HttpError ? e : new HttpError(500, `internal: ${(e as Error).message}`);
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
  } catch (e) {
    await queue.close();
    await thread?.close();
    throw e;
  }
  const address = server.address() as AddressInfo;
  guard = new AccessGuard({ host, address: address.address, port: address.port }, access);
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closed: Promise<void> | null = null;

  return {
    url: `http://${urlHost}:${address.port}`,
    host: address.address,
    port: address.port,
    close() {
      closed ??= (async () => {
        server.close();
        await queue.close();
        await thread?.close();
        server.closeAllConnections();
      })();
      return closed;
    },
  };
}
