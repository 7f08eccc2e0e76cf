// The serve queue: one generation at a time in arrival order, a bounded number waiting behind
// it (503 with Retry-After beyond), clients that leave skipped or stopped, and an orderly close.

import type { Generation } from '@huatuo/llama';
import { Cancelled, HttpError, errorBody, sendError, shuttingDown } from './serve-errors.js';
import { retryAfterSeconds } from './serve-limits.js';
import { sse, type Job } from './serve-reply.js';

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

/** Runs queued jobs one at a time, from construction until {@link JobQueue.close}. */
export class JobQueue {
  private readonly waiting: Job[] = [];
  private current: Job | null = null;
  private currentSince = 0;
  /** Seconds per generated token of recent generations (prefill included), newest last. */
  private readonly recentRates: number[] = [];
  private closing = false;
  private wake: (() => void) | null = null;
  private readonly done: Promise<void>;

  constructor(
    private readonly maxQueue: number,
    private readonly run: (job: Job) => Promise<readonly Generation[]>,
    private readonly emit: (event: ServeEvent) => void,
  ) {
    this.done = this.loop();
  }

  /** The queue's state for /health. */
  status(): { closing: boolean; running: boolean; waiting: number } {
    return { closing: this.closing, running: this.current !== null, waiting: this.waiting.length };
  }

  /**
   * Throws the 503 to answer request `id` if it would be refused now (see {@link push}), so that a server too busy
   * for it does not render and tokenize its prompt first; {@link push} decides again once it is read.
   */
  admit(id: string): void {
    if (this.closing) throw shuttingDown();
    const waiting = this.waiting.length;
    if (waiting >= this.maxQueue && (this.current !== null || waiting > 0)) {
      this.emit({ type: 'rejected', id, waiting, detail: 'queue full' });
      throw new HttpError(503, `the server is busy: ${waiting} requests are waiting (--max-queue ${this.maxQueue}); retry after the Retry-After header's seconds`, {
        'retry-after': String(this.retryAfter()),
      });
    }
  }

  /**
   * Queues `job`, or throws the 503 to answer: the server is closing, or `maxQueue` requests
   * already wait behind a running one (with Retry-After). A job whose client leaves is skipped
   * while it waits and stopped at its next token while it runs.
   */
  push(job: Job): void {
    this.admit(job.id);
    // A client can leave while its body is read and tokenized, before this listener exists.
    if (job.res.closed) job.cancelled = true;
    job.res.on('close', () => {
      if (!job.res.writableFinished) job.cancelled = true;
    });
    this.waiting.push(job);
    this.emit({ type: 'queued', id: job.id, waiting: this.waiting.length });
    this.wake?.();
  }

  /** Seconds until the running generation should end and free a place (see {@link retryAfterSeconds}). */
  retryAfter(): number {
    const c = this.current;
    const running = c === null ? null : { elapsedSeconds: (performance.now() - this.currentSince) / 1000, tokens: c.tokens, maxTokens: c.sampling.maxTokens * c.sampling.n };
    return retryAfterSeconds(running, this.recentRates);
  }

  /** Answers waiting jobs with 503, stops the running one, and resolves when the loop has ended. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      for (const job of this.waiting.splice(0)) {
        this.emit({ type: 'cancelled', id: job.id, waiting: 0, completionTokens: 0, detail: 'the server is shutting down' });
        refuse(job, shuttingDown());
      }
      if (this.current !== null) this.current.cancelled = true;
      this.wake?.();
    }
    await this.done;
  }

  private async loop(): Promise<void> {
    for (;;) {
      const job = this.waiting.shift();
      if (job === undefined) {
        if (this.closing) return;
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
        continue;
      }
      if (job.cancelled) {
        this.emit({ type: 'cancelled', id: job.id, waiting: this.waiting.length, completionTokens: 0, detail: 'the client went away while the request waited' });
        continue;
      }
      this.current = job;
      this.currentSince = performance.now();
      this.emit({ type: 'started', id: job.id, waiting: this.waiting.length });
      try {
        const gens = await this.run(job);
        if (job.tokens > 0) this.recentRates.push((performance.now() - this.currentSince) / 1000 / job.tokens);
        if (this.recentRates.length > 8) this.recentRates.shift();
        this.emit({ type: 'finished', id: job.id, waiting: this.waiting.length, completionTokens: gens.reduce((sum, g) => sum + g.tokens.length, 0) });
      } catch (e) {
        this.fail(job, e);
      } finally {
        this.current = null;
      }
    }
  }

  private fail(job: Job, e: unknown): void {
    if (e instanceof Cancelled) {
      this.emit({ type: 'cancelled', id: job.id, waiting: this.waiting.length, completionTokens: job.tokens, detail: this.closing ? 'the server is shutting down' : 'the client went away' });
      if (!job.res.headersSent) sendError(job.res, shuttingDown());
      // A stream cut by the shutdown ends with an error event, not silently without a finish reason.
      else if (this.closing) sse(job.res, errorBody(shuttingDown()));
      job.res.end();
      return;
    }
    const message = `generation failed: ${(e as Error).message}`;
    this.emit({ type: 'failed', id: job.id, waiting: this.waiting.length, completionTokens: job.tokens, detail: message });
    refuse(job, new HttpError(500, message));
  }
}

/** Answers `job` with `e`: its status and error object, or an error event where its stream has begun (a keep-alive comment starts it). */
function refuse(job: Job, e: HttpError): void {
  if (!job.res.headersSent) {
    sendError(job.res, e);
    return;
  }
  sse(job.res, errorBody(e));
  job.res.end();
}
