// The `serve` command of huatuo-train: a base model (and adapter) behind an OpenAI-compatible
// HTTP API on 127.0.0.1, until Ctrl-C. Printing is the caller's: lines go to the io callbacks.

import { Command } from 'commander';
import { AccessConfigError, normalizeAllowedHosts, normalizeCorsOrigins } from '@huatuo/http';
import { llamaTokenizerDir } from '@huatuo/llama';
import { initWebGPU, readyAttention, readyMatmul } from '@huatuo/tensor';
import { ConfigError, DEFAULT_SERVE_GENERATION, DEFAULT_MAX_CHOICES, DEFAULT_STREAM_KEEP_ALIVE_MS, baseDtypeOption, loadAdapterWithTokenizer, loadBaseModel, startServer, type RunningServer } from '@huatuo/sft';
import { TEMPLATE_HELP, templateFlag } from './template-flag.js';
import { QUANTIZE_HELP, QUANTIZE_THREADS_HELP, contextFlags, quantizeFlag, quantizeThreadsFlag, tokenizerTrustFlag, withBaseFlags, withContextFlags } from './base-flags.js';

/** Where the command writes its lines, and how it waits for the end (Ctrl-C by default). */
export interface ServeCommandIo {
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Resolves when the server should close; default: the first SIGINT or SIGTERM. If it rejects, the server closes and the command fails with its error. */
  until?: (server: RunningServer) => Promise<void>;
}

interface RawOptions {
  base?: string;
  adapter?: string;
  baseDtype: string;
  template: string;
  host: string;
  port: string;
  apiKeyEnv?: string;
  maxQueue: string;
  maxBodyBytes: string;
  maxTokensLimit?: string;
  maxChoices: string;
  maxModelLen?: string;
  allowLongMaxModelLen?: boolean;
  trustTokenizerPatterns?: boolean;
  defaultMaxTokens: string;
  streamKeepAliveMs: string;
  modelName?: string;
  allowedHosts?: string;
  corsOrigin?: string;
  quiet?: boolean;
  quantize?: string;
  quantizeThreads?: string;
}

/** A comma-separated flag's entries, checked as `check` does, with errors naming the flag. */
function list(flag: string, value: string | undefined, check: (entries: string[]) => string[]): string[] {
  const entries = value === undefined ? [] : value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  try {
    return check(entries);
  } catch (e) {
    if (e instanceof AccessConfigError) throw new ConfigError(flag, e.message);
    throw e;
  }
}

function int(flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new ConfigError(flag, `expected an integer in [${min}, ${max}], got "${value}"`);
  return n;
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/**
 * Builds the `serve` command (commander@14), to mount with `program.addCommand(buildServeCommand())`.
 * @example await buildServeCommand().parseAsync(['--port', '8000'], { from: 'user' });
 */
export function buildServeCommand(io: ServeCommandIo = {}): Command {
  const out = io.out ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const serve = new Command('serve').description(
    'serve a base model (and LoRA adapter) behind an OpenAI-compatible API: POST /v1/chat/completions (HuaTuo prompt template or the model\'s chat template), ' +
      'POST /v1/completions, GET /v1/models, GET /health; streaming as server-sent events; one generation at a time, in order',
  );
  return withContextFlags(withBaseFlags(serve))
    .option(
      '--template <name>',
      `how chats become prompts: ${TEMPLATE_HELP}`,
      'med_template',
    )
    .option('--host <address>', 'address to bind; anything but loopback exposes the model to the network', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', '8000')
    .option('--api-key-env <name>', 'environment variable holding the bearer token clients must send (default: no token, open API)')
    .option('--max-queue <n>', 'requests that may wait behind the running one; more get 503 with Retry-After', '16')
    .option('--max-body-bytes <n>', 'largest request body; larger get 413', String(1024 * 1024))
    .option('--max-tokens-limit <n>', "most new tokens one request may ask for (default: the model's context length, --max-model-len)")
    .option('--max-choices <n>', 'most choices (n) one request may ask for; they decode together, and a request whose choices do not fit the GPU is refused', String(DEFAULT_MAX_CHOICES))
    .option('--default-max-tokens <n>', 'new tokens when a request gives no max_tokens', String(DEFAULT_SERVE_GENERATION.maxTokens))
    .option(
      '--stream-keep-alive-ms <n>',
      'milliseconds a streamed reply may stay silent (queued, or on a long prefill) before a ": keep-alive" comment line keeps proxies from cutting it; 0: none',
      String(DEFAULT_STREAM_KEEP_ALIVE_MS),
    )
    .option('--model-name <name>', 'model id clients send and /v1/models lists (default: the --base folder name or the demo model name)')
    .option('--allowed-hosts <names>', 'comma-separated Host names to accept besides the bound address and localhost (e.g. a proxy\'s name); other Host headers get 403')
    .option('--cors-origin <origins>', 'comma-separated origins (scheme://host:port, or *) whose web pages may call the API; other cross-origin requests get 403')
    .option('--quiet', 'do not log each request')
    .option('--quantize <format>', QUANTIZE_HELP, 'none')
    .option('--quantize-threads <n>', QUANTIZE_THREADS_HELP)
    .action(async (raw: RawOptions, cmd: Command) => {
      // Checked before the model loads: a missing template fails at once (one the adapter's tokenizer may bring, once it loads).
      const templateOf = templateFlag('serve', raw.template, raw.base ?? null, raw.adapter);
      const port = int('--port', raw.port, 0, 65535);
      const maxQueue = int('--max-queue', raw.maxQueue, 0);
      const maxBodyBytes = int('--max-body-bytes', raw.maxBodyBytes, 1);
      const maxTokensLimit = raw.maxTokensLimit === undefined ? undefined : int('--max-tokens-limit', raw.maxTokensLimit, 1);
      const maxChoices = int('--max-choices', raw.maxChoices, 1);
      const defaultMaxTokens = int('--default-max-tokens', raw.defaultMaxTokens, 1);
      const streamKeepAliveMs = int('--stream-keep-alive-ms', raw.streamKeepAliveMs, 0, 2 ** 31 - 1);
      const allowedHosts = list('--allowed-hosts', raw.allowedHosts, normalizeAllowedHosts);
      const corsOrigins = list('--cors-origin', raw.corsOrigin, normalizeCorsOrigins);
      const quantize = quantizeFlag(raw.quantize);
      const quantizeThreads = quantizeThreadsFlag(raw.quantizeThreads);
      const context = contextFlags(raw);
      let apiKey: string | undefined;
      if (raw.apiKeyEnv !== undefined) {
        apiKey = process.env[raw.apiKeyEnv];
        if (apiKey === undefined || apiKey.trim() === '') throw new ConfigError('--api-key-env', `environment variable ${raw.apiKeyEnv} is unset or empty; export the token in it, or leave out --api-key-env for an open API`);
      }
      const info = await initWebGPU({ showDawnNotices: Boolean(cmd.optsWithGlobals().verbose) });
      err(`serve: device ${info.adapterName}`);
      await readyMatmul();
      const trust = tokenizerTrustFlag(raw);
      const base = await loadBaseModel(raw.base ?? null, undefined, { quantize, quantizeThreads, dtype: baseDtypeOption(raw.baseDtype), ...context, ...trust });
      // loadAdapter attaches LoRA with the adapter's own config, then its weights (and its tokenizer where it resizes the vocabulary).
      const adapterTokenizer = raw.adapter === undefined ? null : await loadAdapterWithTokenizer(base, raw.adapter, trust);
      const template = templateOf.forTokenizer(adapterTokenizer);
      // The first request then waits on no attention pipeline (generate readies them too).
      await readyAttention({ headDim: base.model.config.headDim, dtypes: [base.model.dtype], decode: true });
      const modelName = raw.modelName ?? (base.isDemo ? base.name : (base.name.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? base.name));
      const server = await startServer({
        model: base.model,
        tokenizer: base.tokenizer,
        template,
        modelName,
        modelRoot: base.name,
        host: raw.host,
        port,
        ...(apiKey === undefined ? {} : { apiKey }),
        maxQueue,
        maxBodyBytes,
        ...(maxTokensLimit === undefined ? {} : { maxTokensLimit }),
        maxChoices,
        defaultGeneration: { maxTokens: defaultMaxTokens },
        streamKeepAliveMs,
        allowedHosts,
        corsOrigins,
        tokenizerDir: adapterTokenizer ?? raw.base ?? llamaTokenizerDir(),
        ...trust,
        onEvent: raw.quiet
          ? undefined
          : (e) => err(`serve: ${e.type} ${e.id} (waiting ${e.waiting}${e.completionTokens === undefined ? '' : `, ${e.completionTokens} tokens`}${e.detail ? `: ${e.detail}` : ''})`),
      });
      if (raw.host !== '127.0.0.1' && raw.host !== 'localhost' && raw.host !== '::1') {
        err(`serve: bound to ${raw.host}: reachable from other machines${apiKey === undefined ? ', with no API key' : ''}`);
        err(`serve: requests must name the server as ${raw.host} or localhost${allowedHosts.length > 0 ? ` or ${allowedHosts.join(', ')}` : ''} in their Host header; add the names clients use with --allowed-hosts`);
      }
      out(`serve: ${modelName}${raw.adapter ? ` + ${raw.adapter}` : ''} (template ${template.name}) at ${server.url}/v1${apiKey === undefined ? '' : ` (bearer token from $${raw.apiKeyEnv})`}`);
      out('serve: Ctrl-C to stop');
      try {
        await (io.until ?? untilSignal)(server);
      } finally {
        // An `until` that fails closes the server too: left listening, it would keep the process alive.
        await server.close();
        base.model.dispose();
      }
      out('serve: stopped');
    });
}
