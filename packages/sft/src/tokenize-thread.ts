// Tokenizing prompts on a worker thread, so that a long prompt does not hold up the server's
// event loop (health checks, other clients' streams) while it is encoded.

import { Worker } from 'node:worker_threads';
import type { EncodeOptions, Tokenizer, TokenizerLoadOptions } from '@huatuo/llama';
import { ConfigError } from './errors.js';

const PROBE = '头痛怎么办？ Take  two\ttablets,\n\nthen rest. 1234 ½';

/**
 * A tokenizer loaded from a folder on its own worker thread; {@link TokenizerThread.encode}
 * gives the same ids as the main thread's `tokenizer.encode(text)` (checked on start).
 *
 * @example
 * const thread = await TokenizerThread.start('./llama-7b', tokenizer);
 * const ids = await thread.encode('头痛怎么办？');
 * await thread.close();
 */
export class TokenizerThread {
  private readonly pending = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>();
  private next = 0;
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: { id: number; ids?: number[]; error?: string }) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.ids !== undefined) p.resolve(m.ids);
      else p.reject(new Error(`tokenizer thread: ${m.error}`));
    });
    const fail = (e: Error): void => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(new Error(`tokenizer thread failed: ${e.message}`)));
    worker.on('exit', () => fail(new Error('tokenizer thread has stopped')));
  }

  /**
   * Starts a thread that loads the tokenizer of `dir` (as loadTokenizer does, with `options`) and checks
   * that it encodes like `same`; `flag` names the option in errors.
   */
  static async start(dir: string, same: Tokenizer, flag = 'tokenizerDir', options: TokenizerLoadOptions = {}): Promise<TokenizerThread> {
    const worker = spawn(dir, options);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { ready?: boolean; error?: string }): void => {
        if (m.ready === undefined) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        if (m.ready) resolve();
        else reject(new ConfigError(flag, `${dir}: the tokenizer did not load on the tokenizer thread (${m.error})`));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    }).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
    const thread = new TokenizerThread(worker);
    const [mine, theirs] = [await thread.encode(PROBE).catch(async (e: unknown) => {
      await thread.close();
      throw e;
    }), same.encode(PROBE)];
    if (mine.length !== theirs.length || mine.some((id, i) => id !== theirs[i])) {
      await thread.close();
      throw new ConfigError(flag, `${dir}: its tokenizer encodes differently from the one the server was given; pass the folder the tokenizer was loaded from`);
    }
    return thread;
  }

  /** Token ids of `text`, as `tokenizer.encode(text, options)` gives them. */
  encode(text: string, options: EncodeOptions = {}): Promise<number[]> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, text, options: { addBos: options.addBos, addEos: options.addEos } });
    });
  }

  /** Stops the thread; encodings still pending are rejected. */
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * The worker, from this module's own folder: compiled JavaScript, or TypeScript sources through tsx
 * (the repository's development dependency; an installed package runs the compiled files).
 */
function spawn(dir: string, options: TokenizerLoadOptions): Worker {
  const workerData = { dir, options: { trustTokenizerPatterns: options.trustTokenizerPatterns ?? false } };
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./tokenize-worker.js', here), { workerData });
  const entry = new URL('./tokenize-worker.ts', here).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`, { eval: true, workerData });
}
