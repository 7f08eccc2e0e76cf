// Node's QuantizePool: worker threads, each quantizing one weight at a time with the function the main thread
// would run, inputs and results transferred, not copied. Browsers get pool-browser.ts (#quant-pool).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ValueError } from '../errors.js';
import type { HostQuantized, QuantFormat } from './formats.js';
import { checkThreads, mainThreadPool, ownsBuffer, rebuildError, type QuantizePool } from './pool.js';

/**
 * The most threads a default pool uses: each weight in flight holds its input (up to 90 MB for a LLaMA-7B
 * projection in F16), and a loader reading one tensor ahead would keep many more waiting.
 */
export const maxDefaultQuantizeThreads = 8;

/**
 * Threads a quantize pool uses by default: one per core the process may use, less one for the main thread
 * (which reads the file and uploads), at least 1 and at most {@link maxDefaultQuantizeThreads}.
 */
export function defaultQuantizeThreads(): number {
  return Math.max(1, Math.min(maxDefaultQuantizeThreads, availableParallelism() - 1));
}

interface Job {
  data: Float32Array | Uint16Array | undefined;
  readonly rows: number;
  readonly cols: number;
  readonly format: QuantFormat;
  readonly resolve: (q: HostQuantized) => void;
  readonly reject: (e: Error) => void;
}

/** A worker running worker-node: from the TypeScript sources (through tsx, as the main thread runs) or from dist. */
function startWorker(): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSource ? './worker-node.ts' : './worker-node.js', import.meta.url);
  if (!fromSource) return new Worker(entry);
  // Node does not hand the main thread's --import hooks to a worker's entry module: register tsx's first.
  let tsx: string;
  try {
    tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  } catch {
    throw new ValueError('QuantizePool: running from the TypeScript sources, worker threads load them through tsx, which is not installed; install tsx, run the built package, or use 1 thread');
  }
  return new Worker(`import(${tsx}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`, { eval: true });
}

class WorkerPool implements QuantizePool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Job>();
  private readonly queue: Job[] = [];
  private failure: Error | undefined;

  constructor(readonly threads: number) {
    // Started now rather than at the first weight, so that their start overlaps the caller's other work.
    try {
      for (let i = 0; i < threads; i++) this.idle.push(this.spawn());
    } catch (err) {
      for (const w of this.workers) void w.terminate();
      throw err;
    }
  }

  quantize(data: Float32Array | Uint16Array, rows: number, cols: number, format: QuantFormat): Promise<HostQuantized> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ data, rows, cols, format, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    await this.fail(new ValueError('QuantizePool: closed before this weight was quantized'));
  }

  /** Hands queued weights to idle workers. */
  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop();
      if (!worker) return;
      const job = this.queue.shift()!;
      const data = ownsBuffer(job.data!) ? job.data! : job.data!.slice();
      job.data = undefined;
      this.running.set(worker, job);
      worker.postMessage({ data, rows: job.rows, cols: job.cols, format: job.format }, [data.buffer as ArrayBuffer]);
    }
  }

  private spawn(): Worker {
    const worker = startWorker();
    this.workers.push(worker);
    worker.on('message', (m: { result?: HostQuantized; error?: { name: string; message: string } }) => {
      const job = this.running.get(worker);
      if (!job) return;
      this.running.delete(worker);
      this.idle.push(worker);
      if (m.error) job.reject(rebuildError(m.error.name, m.error.message));
      else job.resolve(m.result!);
      this.pump();
    });
    // A worker that dies (it could not load, ran out of memory, or exited) takes the pool down with it.
    worker.on('error', (err) => this.fail(new ValueError(`QuantizePool: a quantizing thread failed: ${err.message}`)));
    worker.on('exit', (code) => {
      if (!this.failure) this.fail(new ValueError(`QuantizePool: a quantizing thread exited with code ${code}`));
    });
    return worker;
  }

  /** Rejects every weight not yet quantized with `err`, stops every worker, and refuses later weights. */
  private async fail(err: Error): Promise<void> {
    this.failure ??= err;
    for (const job of [...this.running.values(), ...this.queue]) job.reject(this.failure);
    this.running.clear();
    this.queue.length = 0;
    this.idle.length = 0;
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * A pool quantizing on `threads` worker threads (default {@link defaultQuantizeThreads}); 1 quantizes on the
 * calling thread instead. The workers start at once; close() stops them (a pool left open keeps Node running).
 *
 * @example
 * const pool = openQuantizePool(4);
 * try {
 *   const q = await pool.quantize(await st.readAs('model.layers.0.mlp.up_proj.weight', 'f16'), 11008, 4096, 'nf4');
 * } finally {
 *   await pool.close();
 * }
 */
export function openQuantizePool(threads: number = defaultQuantizeThreads()): QuantizePool {
  checkThreads(threads, 'openQuantizePool');
  return threads === 1 ? mainThreadPool() : new WorkerPool(threads);
}
