// The gen-data pipeline: sample knowledge, write a question/answer (templates
// offline, or a chat model), check it, and append it with its provenance.

import { ApiError, ExhaustedError, OptionError } from './errors.js';
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
  /** Called after each record is appended. */
  onRecord?: (record: InstructionRecord) => void;
  /** Called for each dropped instance. */
  onDrop?: (reason: DropReason, sample: KnowledgeSample, detail: string) => void;
}

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
 * graph has too few unused pairs, and {@link ApiError} when the endpoint keeps failing.
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
    dropped,
    exhausted: false,
    repairedPartialLine: existing.repairedPartialLine,
    requestErrors: [],
  };
  const target = count - existing.records.length;
  const maxFailures = options.maxConsecutiveFailures ?? Math.max(8, 2 * options.concurrency);
  let consecutiveFailures = 0;
  let fatal: Error | undefined;

  const drop = (reason: DropReason, sample: KnowledgeSample, detail: string): void => {
    dropped[reason]++;
    options.onDrop?.(reason, sample, detail);
  };

  const keep = (sample: KnowledgeSample, pair: QaPair): void => {
    summary.attempted++;
    const grounding = checkGrounding(pair, sample);
    if (grounding !== undefined) return drop(grounding, sample, pair.answer);
    if (index.isNearDuplicate(pair.question)) return drop('near-duplicate', sample, pair.question);
    if (summary.written >= target) return;
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
      if (!result.ok) {
        summary.attempted++;
        consecutiveFailures++;
        if (summary.requestErrors.length < 5) summary.requestErrors.push(`${sample.key}: ${result.error}`);
        drop('request-failed', sample, result.error);
        if (consecutiveFailures >= maxFailures && fatal === undefined) {
          fatal = new ApiError(`${llm.client.url}: ${consecutiveFailures} requests in a row failed after retries (last: ${result.error}); ${result.hint}; ${summary.total} records are saved in ${out} and a rerun resumes`);
        }
        return;
      }
      consecutiveFailures = 0;
      const pair = parseModelReply(result.content);
      if (pair === undefined) {
        summary.attempted++;
        drop('invalid-json', sample, result.content);
        return;
      }
      keep(sample, pair);
    } catch (e) {
      fatal ??= e as Error;
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
  }
  if (fatal !== undefined) throw fatal;
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
