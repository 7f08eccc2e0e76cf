// The gen-data pipeline: sample knowledge, write a question/answer (templates
// offline, or a chat model), check it, and append it with its provenance.

import { ApiError, ExhaustedError, OptionError, UnusableRepliesError } from './errors.js';
import type { KgEntity } from './graph.js';
import { toCmekg } from './graph.js';
import type { DropReason } from './checks.js';
import { DROP_REASONS, NearDuplicateIndex, checkGrounding } from './checks.js';
import type { ChatClient } from './llm.js';
import { SYSTEM_PROMPT, buildPrompt, parseModelReply } from './llm.js';
import type { InstructionRecord } from './output.js';
import { RecordWriter, readExistingOutput } from './output.js';
import type { KnowledgeSample } from './sample.js';
import { KnowledgeSampler } from './sample.js';
import type { QaPair } from './templates.js';
import { templateQa } from './templates.js';

/** Settings of {@link generateData}. */
export interface GenerateOptions {
  /** Entities to sample from. */
  entities: readonly KgEntity[];
  /** Output JSONL file; records already in it count toward `count` and are not redone. */
  out: string;
  /** Records the output file should hold when done. */
  count: number;
  /** Sampler seed. */
  seed: number;
  /** Attributes per sample, inclusive range. */
  minAttributes: number;
  maxAttributes: number;
  /** Questions more similar than this (3-gram Jaccard, 0..1) to a kept one are dropped. */
  similarityThreshold: number;
  /** The model to write pairs; offline templates when undefined. */
  llm?: { client: ChatClient; model: string } | undefined;
  /** Requests in flight at once (LLM mode). */
  concurrency: number;
  /** Consecutive failed requests (after retries) that abort the run. Default max(8, 2 * concurrency). */
  maxConsecutiveFailures?: number;
  /** Consecutive model replies failing the checks that stop the run (LLM mode). Default {@link DEFAULT_MAX_CONSECUTIVE_REJECTS}. */
  maxConsecutiveRejects?: number;
  /** Called after each record is appended. */
  onRecord?: (record: InstructionRecord) => void;
  /** Called for each dropped instance. */
  onDrop?: (reason: DropReason, sample: KnowledgeSample, detail: string) => void;
  /** Called after each instance is handled (kept, dropped or failed), with the counts so far. */
  onProgress?: (summary: Readonly<GenerateSummary>) => void;
}

/** Model replies in a row failing the checks after which a run stops, unless `maxConsecutiveRejects` says otherwise. */
export const DEFAULT_MAX_CONSECUTIVE_REJECTS = 50;

/** The longest part of a rejected reply an error quotes. */
const QUOTED_REPLY_CHARS = 200;

/** What a run did. */
export interface GenerateSummary {
  out: string;
  /** `templated` or `llm:<model>`. */
  source: string;
  /** Target record count. */
  count: number;
  /** Records already in the file at the start. */
  existing: number;
  /** Records appended by this run. */
  written: number;
  /** Records in the file at the end. */
  total: number;
  /** Instances generated (kept + dropped). */
  attempted: number;
  /** Chat requests made, each counted once however many attempts its retries took (0 offline). */
  requests: number;
  /** Dropped instances per reason. */
  dropped: Record<DropReason, number>;
  /** True when the sampler ran out of unused pairs before the count was reached. */
  exhausted: boolean;
  /** True when a partial last line from an interrupted run was removed. */
  repairedPartialLine: boolean;
  /** Up to five request errors, for the report. */
  requestErrors: string[];
}

function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Generate knowledge-grounded instruction records into `options.out` until it
 * holds `options.count` records. Each record is appended as soon as it passes
 * the checks, so an interrupted run loses only the requests in flight, and a
 * rerun with the same settings skips every (entity, attribute set) already in
 * the file. Throws {@link ExhaustedError} (after writing what it could) when the
 * graph has too few unused pairs, {@link ApiError} when the endpoint keeps failing, and
 * {@link UnusableRepliesError} when `maxConsecutiveRejects` replies in a row fail the checks.
 * @example
 * const graph = await loadShippedGraph();
 * const summary = await generateData({ entities: graph.entities, out: 'kg.jsonl', count: 500, seed: 42,
 *   minAttributes: 1, maxAttributes: 2, similarityThreshold: 0.85, concurrency: 1 });
 */
export async function generateData(options: GenerateOptions): Promise<GenerateSummary> {
  const { entities, out, count, seed, llm, similarityThreshold } = options;
  if (!Number.isInteger(count) || count < 1) throw new OptionError(`count: expected a positive integer, got ${count}`);
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new OptionError(`concurrency: expected a positive integer, got ${options.concurrency}`);
  if (!(similarityThreshold >= 0 && similarityThreshold <= 1)) throw new OptionError(`similarity threshold: expected a number in [0, 1], got ${similarityThreshold}`);
  const sampler = new KnowledgeSampler(entities, { seed, minAttributes: options.minAttributes, maxAttributes: options.maxAttributes });
  const existing = readExistingOutput(out);
  const writer = new RecordWriter(out);
  const index = new NearDuplicateIndex(similarityThreshold);
  for (const r of existing.records) index.add(r.instruction);
  const source = llm === undefined ? 'templated' : `llm:${llm.model}`;
  const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  const summary: GenerateSummary = {
    out,
    source,
    count,
    existing: existing.records.length,
    written: 0,
    total: existing.records.length,
    attempted: 0,
    requests: 0,
    dropped,
    exhausted: false,
    repairedPartialLine: existing.repairedPartialLine,
    requestErrors: [],
  };
  const target = count - existing.records.length;
  const maxFailures = options.maxConsecutiveFailures ?? Math.max(8, 2 * options.concurrency);
  const maxRejects = options.maxConsecutiveRejects ?? DEFAULT_MAX_CONSECUTIVE_REJECTS;
  if (!Number.isInteger(maxRejects) || maxRejects < 1) throw new OptionError(`max consecutive rejects: expected a positive integer, got ${maxRejects}`);
  let consecutiveFailures = 0;
  let consecutiveRejects = 0;
  // The error that ends the run, made once the requests in flight are done so that it counts them too.
  let fatal: (() => Error) | undefined;

  const drop = (reason: DropReason, sample: KnowledgeSample, detail: string): void => {
    dropped[reason]++;
    options.onDrop?.(reason, sample, detail);
  };

  /** Check a pair and append it when it passes; returns why it was dropped, or undefined when it passed. */
  const keep = (sample: KnowledgeSample, pair: QaPair): DropReason | undefined => {
    summary.attempted++;
    const grounding = checkGrounding(pair, sample);
    if (grounding !== undefined) {
      drop(grounding, sample, pair.answer);
      return grounding;
    }
    if (index.isNearDuplicate(pair.question)) {
      drop('near-duplicate', sample, pair.question);
      return 'near-duplicate';
    }
    if (summary.written >= target) return undefined;
    const record: InstructionRecord = {
      instruction: pair.question,
      input: '',
      output: pair.answer,
      knowledge: toCmekg(sample.entity, sample.attributes),
      source,
    };
    writer.append(record);
    index.add(pair.question);
    summary.written++;
    summary.total++;
    options.onRecord?.(record);
    return undefined;
  };

  let lastRejected = { reason: 'invalid-json' as DropReason, reply: '' };
  const rejected = (reason: DropReason, reply: string, model: string, url: string): void => {
    lastRejected = { reason, reply };
    consecutiveRejects++;
    if (consecutiveRejects >= maxRejects) fatal ??= () => unusableReplies(model, url);
  };

  const unusableReplies = (model: string, url: string): UnusableRepliesError => {
    const { reason, reply } = lastRejected;
    const reasons = DROP_REASONS.filter((r) => r !== 'request-failed' && dropped[r] > 0).map((r) => `${r} ${dropped[r]}`).join(', ');
    const quoted = reply.length > QUOTED_REPLY_CHARS ? `${reply.slice(0, QUOTED_REPLY_CHARS)}… (${reply.length} characters)` : reply;
    const failed = dropped['request-failed'] > 0 ? `, ${dropped['request-failed']} failed` : '';
    return new UnusableRepliesError(
      `${url}: ${maxRejects} replies in a row of --model ${model} failed the checks, so the run stopped ` +
        `(${summary.requests} requests${failed}, ${summary.written} records kept; rejected: ${reasons}). ` +
        `The last rejected reply (${reason}): ${JSON.stringify(quoted)}. ` +
        (summary.requestErrors.length > 0 ? `The first failed request: ${summary.requestErrors[0]}. ` : '') +
        'A reply must hold a JSON object {"question": ..., "answer": ...} whose answer names the entity and a sampled value: ' +
        'check that --api-url serves an instruction-following chat model and that --model names it, ' +
        `or raise --max-consecutive-rejects (now ${maxRejects}) to go on with a model that rarely passes. ` +
        `${summary.total} records are saved in ${out} and a rerun with the same --seed resumes`,
      summary.total,
    );
  };

  const handle = async (sample: KnowledgeSample): Promise<void> => {
    if (llm === undefined) {
      keep(sample, templateQa(sample, hash32(`${seed}|${sample.key}`)));
      return;
    }
    try {
      const knowledge = toCmekg(sample.entity, sample.attributes);
      const result = await llm.client.complete([
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: buildPrompt(knowledge) },
      ]);
      summary.requests++;
      if (!result.ok) {
        summary.attempted++;
        consecutiveFailures++;
        if (summary.requestErrors.length < 5) summary.requestErrors.push(`${sample.key}: ${result.error}`);
        drop('request-failed', sample, result.error);
        if (consecutiveFailures >= maxFailures && fatal === undefined) {
          const failures = consecutiveFailures;
          fatal = () => new ApiError(`${llm.client.url}: ${failures} requests in a row failed after retries (last: ${result.error}); ${result.hint}; ${summary.total} records are saved in ${out} and a rerun resumes`);
        }
        return;
      }
      consecutiveFailures = 0;
      const pair = parseModelReply(result.content);
      let rejection: DropReason | undefined = 'invalid-json';
      if (pair === undefined) {
        summary.attempted++;
        drop('invalid-json', sample, result.content);
      } else rejection = keep(sample, pair);
      if (rejection === undefined) consecutiveRejects = 0;
      else rejected(rejection, result.content, llm.model, llm.client.url);
    } catch (e) {
      fatal ??= () => e as Error;
    }
  };

  const concurrency = llm === undefined ? 1 : options.concurrency;
  const running = new Set<Promise<void>>();
  for (;;) {
    while (fatal === undefined && summary.written + running.size < target && running.size < concurrency) {
      let sample = sampler.next();
      while (sample !== undefined && existing.keys.has(sample.key)) sample = sampler.next();
      if (sample === undefined) {
        summary.exhausted = true;
        break;
      }
      const p: Promise<void> = handle(sample).finally(() => running.delete(p));
      running.add(p);
    }
    if (running.size === 0) break;
    await Promise.race(running);
    options.onProgress?.(summary);
  }
  if (fatal !== undefined) throw fatal();
  if (summary.total < count) {
    throw new ExhaustedError(
      `${out}: the graph ran out of unused (entity, attribute set) pairs with ${summary.total} of ${count} records ` +
        `(dropped: ${DROP_REASONS.filter((r) => dropped[r] > 0).map((r) => `${r} ${dropped[r]}`).join(', ') || 'none'}); ` +
        'lower -n, widen --attributes-per-sample, raise --similarity-threshold, or use a larger --graph',
      summary.total,
    );
  }
  return summary;
}
