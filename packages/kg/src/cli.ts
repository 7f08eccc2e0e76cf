// The `gen-data` command of huatuo-train: knowledge-grounded instruction data
// from a graph, offline (templates) or through an OpenAI-compatible endpoint.

import { Command } from 'commander';
import { OptionError } from './errors.js';
import type { EntityClass } from './graph.js';
import { loadGraph } from './graph.js';
import { DROP_REASONS } from './checks.js';
import { DEFAULT_MAX_CONSECUTIVE_REJECTS, generateData } from './generate.js';
import type { GenerateSummary } from './generate.js';
import { ChatClient } from './llm.js';
import { shippedGraphPath } from './shipped-graph.js';

/** Where the command writes its report lines (stdout and stderr by default), and how often progress. */
export interface GenDataIo {
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Least time between two progress lines on `err`; default {@link PROGRESS_INTERVAL_MS}. */
  progressIntervalMs?: number;
}

/** Default time between progress lines: a run shorter than this prints none. */
export const PROGRESS_INTERVAL_MS = 5000;

interface RawOptions {
  graph?: string;
  offline?: boolean;
  count?: string;
  out?: string;
  seed: string;
  apiUrl?: string;
  model?: string;
  apiKeyEnv: string;
  concurrency: string;
  timeoutMs: string;
  maxRetries: string;
  retryBaseMs: string;
  temperature: string;
  similarityThreshold: string;
  attributesPerSample: string;
  maxConsecutiveRejects: string;
}

function int(flag: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (value === undefined || !/^-?\d+$/.test(value.trim()) || n < min) {
    throw new OptionError(`${flag}: expected an integer >= ${min}, got ${value === undefined ? 'nothing' : `"${value}"`}`);
  }
  return n;
}

function num(flag: string, value: string, lo: number, hi: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) {
    throw new OptionError(`${flag}: expected a number in [${lo}, ${hi}], got "${value}"`);
  }
  return n;
}

/** Parse `--attributes-per-sample`: "K" or "MIN-MAX". */
function attributeRange(value: string): [number, number] {
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(value);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(lo >= 1 && hi >= lo)) {
    throw new OptionError(`--attributes-per-sample: expected "K" or "MIN-MAX" with 1 <= MIN <= MAX, got "${value}"`);
  }
  return [lo, hi];
}

function dropCounts(s: Readonly<GenerateSummary>): string {
  const drops = DROP_REASONS.filter((r) => s.dropped[r] > 0).map((r) => `${r} ${s.dropped[r]}`);
  return drops.length > 0 ? drops.join(', ') : 'none';
}

/** One progress line: time so far, records against the target, requests, drops by reason. */
function progressLine(s: Readonly<GenerateSummary>, elapsedMs: number): string {
  const requests = s.source === 'templated' ? '' : `${s.requests} requests, `;
  return `gen-data: ${Math.round(elapsedMs / 1000)} s: ${s.total} of ${s.count} records (${s.written} new), ${requests}${s.attempted} instances checked, dropped: ${dropCounts(s)}`;
}

function summaryLines(s: GenerateSummary): string[] {
  const lines = [
    `gen-data: ${s.out} holds ${s.total} of ${s.count} records (${s.existing} already there, ${s.written} written now; source ${s.source})`,
    `gen-data: ${s.source === 'templated' ? '' : `${s.requests} requests, `}${s.attempted} instances checked, ${s.written} kept, dropped: ${dropCounts(s)}`,
  ];
  if (s.repairedPartialLine) lines.push('gen-data: removed a partial last line left by an interrupted run');
  for (const e of s.requestErrors) lines.push(`gen-data: request error: ${e}`);
  return lines;
}

/**
 * Build the `gen-data` command (commander@14), for mounting under huatuo-train
 * with `program.addCommand(buildGenDataCommand())` or running on its own.
 * @example await buildGenDataCommand().parseAsync(['--offline', '-n', '500', '--out', 'kg.jsonl'], { from: 'user' });
 */
export function buildGenDataCommand(io: GenDataIo = {}): Command {
  const out = io.out ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const progressIntervalMs = io.progressIntervalMs ?? PROGRESS_INTERVAL_MS;
  return new Command('gen-data')
    .description(
      'Write knowledge-grounded medical instruction data (HuaTuo section 3.3): sample (entity, attribute set) pairs from a ' +
        'knowledge graph, write a patient question and an answer grounded in exactly that knowledge, check it, and append ' +
        '{"instruction","input","output","knowledge","source"} lines to a JSONL file. A rerun with the same flags resumes.',
    )
    .option('--graph <file>', 'knowledge graph, JSON array or JSONL of CMeKG or QASystemOnMedicalKG records (default: the shipped graph)')
    .option('--offline', 'no model: deterministic templates per class and attribute; records are marked "source": "templated"')
    .option('-n, --count <n>', 'records the output file should hold when done (records already there count)')
    .option('--out <file>', 'output JSONL file; appended to as records arrive, existing records are skipped on rerun')
    .option('--seed <n>', 'sampler seed; keep it when resuming', '42')
    .option('--api-url <url>', 'OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1; requests go to <url>/chat/completions (a URL already ending in /chat/completions is used as is)')
    .option('--model <name>', 'model name sent with each request, one the endpoint serves (GET <api-url>/models lists them; for huatuo-train serve, the name it prints); recorded as "source": "llm:<name>"')
    .option('--api-key-env <name>', 'environment variable holding the API key (sent as a Bearer token; none is sent when it is unset)', 'OPENAI_API_KEY')
    .option('--concurrency <n>', 'requests in flight at once', '4')
    .option('--timeout-ms <ms>', 'timeout of each request attempt', '60000')
    .option('--max-retries <n>', 'retries of a request on 408, 409, 429, 5xx, timeout or network error, with exponential backoff (other 4xx stop the run at once)', '4')
    .option('--retry-base-ms <ms>', 'first backoff delay; doubles each retry, plus jitter (a retry-after-ms or Retry-After header of up to a minute takes precedence)', '500')
    .option('--temperature <t>', 'sampling temperature sent with each request', '0.7')
    .option('--similarity-threshold <x>', 'drop a question whose character 3-gram Jaccard similarity to a kept question exceeds this (0..1)', '0.85')
    .option('--attributes-per-sample <k>', 'attributes per knowledge sample: "K" or "MIN-MAX"', '1-2')
    .option('--max-consecutive-rejects <n>', 'stop when this many model replies in a row fail the checks (not JSON, no entity or value, near duplicate), with the counts and the last reply; records kept so far stay', String(DEFAULT_MAX_CONSECUTIVE_REJECTS))
    .action(async (raw: RawOptions) => {
      const count = int('-n/--count', raw.count, 1);
      if (raw.out === undefined || raw.out.trim() === '') throw new OptionError('--out: expected an output JSONL file path, got nothing');
      if (raw.offline === true && raw.apiUrl !== undefined) throw new OptionError('--offline and --api-url exclude each other; pass one of them');
      if (raw.offline !== true && raw.apiUrl === undefined) throw new OptionError('pass --offline for templated records, or --api-url and --model to use a chat-completions endpoint');
      if (raw.apiUrl !== undefined && (raw.model === undefined || raw.model.trim() === '')) throw new OptionError('--model: required with --api-url (the model name the endpoint serves)');
      const [minAttributes, maxAttributes] = attributeRange(raw.attributesPerSample);
      const seed = int('--seed', raw.seed, 0);
      const similarityThreshold = num('--similarity-threshold', raw.similarityThreshold, 0, 1);
      const concurrency = int('--concurrency', raw.concurrency, 1);
      const maxConsecutiveRejects = int('--max-consecutive-rejects', raw.maxConsecutiveRejects, 1);
      const graphFile = raw.graph ?? shippedGraphPath();
      const graph = await loadGraph(graphFile);
      const perClass: Record<EntityClass, number> = { disease: 0, drug: 0, symptom: 0 };
      for (const e of graph.entities) perClass[e.kind]++;
      err(`gen-data: graph ${graphFile}: ${graph.entities.length} entities (${perClass.disease} diseases, ${perClass.drug} drugs, ${perClass.symptom} symptoms); ${graph.skipped.length} records skipped, ${graph.warnings.length} attributes ignored`);
      for (const s of graph.skipped.slice(0, 10)) err(`gen-data: skipped record ${s.record}: ${s.reason}`);
      for (const w of graph.warnings.slice(0, 10)) err(`gen-data: ${w}`);
      let llm: { client: ChatClient; model: string } | undefined;
      if (raw.apiUrl !== undefined) {
        const model = (raw.model as string).trim();
        const client = new ChatClient({
          apiUrl: raw.apiUrl,
          model,
          apiKey: process.env[raw.apiKeyEnv],
          timeoutMs: int('--timeout-ms', raw.timeoutMs, 1),
          maxRetries: int('--max-retries', raw.maxRetries, 0),
          retryBaseMs: int('--retry-base-ms', raw.retryBaseMs, 0),
          temperature: num('--temperature', raw.temperature, 0, 2),
        });
        llm = { client, model };
      }
      const started = Date.now();
      let lastProgress = started;
      const summary = await generateData({
        entities: graph.entities,
        out: raw.out,
        count,
        seed,
        minAttributes,
        maxAttributes,
        similarityThreshold,
        llm,
        concurrency,
        maxConsecutiveRejects,
        onProgress: (s) => {
          const now = Date.now();
          if (now - lastProgress < progressIntervalMs) return;
          lastProgress = now;
          err(progressLine(s, now - started));
        },
      });
      for (const line of summaryLines(summary)) out(line);
    });
}
