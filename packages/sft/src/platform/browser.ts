// Run files in a browser: one IndexedDB object store whose keys are '/'-separated paths, so a
// closed tab keeps its checkpoints. A folder rename is one transaction, so a checkpoint commits whole, and so is an
// adapter's save.

import { adapterConfigName, adapterWeightsName, bytesSource, loadAdapterFromFiles, serializeAdapter, staleTokenizerFiles } from '@huatuo/llama';
import { CheckpointError } from '../errors.js';
import type { RunFiles } from '../run-files.js';

const DB_NAME = 'huatuo-webgpu';
const STORE = 'files';

let opened: Promise<IDBDatabase> | null = null;

function database(): Promise<IDBDatabase> {
  opened ??= new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') {
      reject(new CheckpointError('this browser has no IndexedDB; checkpoints cannot be stored (a private window may disable it)'));
      return;
    }
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new CheckpointError(`IndexedDB ${DB_NAME}: cannot open (${request.error?.message ?? 'unknown error'})`));
  });
  return opened;
}

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * Runs `body` in one transaction and resolves when it commits: all its changes or none (an error in `body` aborts it,
 * as a closed tab or a failed request does).
 */
async function transact<T>(mode: IDBTransactionMode, body: (store: IDBObjectStore) => Promise<T>): Promise<T> {
  const db = await database();
  const tx = db.transaction(STORE, mode);
  const committed = new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new CheckpointError(`IndexedDB ${DB_NAME}: transaction aborted`));
  });
  let result: T;
  try {
    result = await body(tx.objectStore(STORE));
  } catch (err) {
    try {
      tx.abort();
    } catch {
      // aborted already (a failed request aborts its transaction)
    }
    committed.catch(() => undefined);
    throw err;
  }
  await committed;
  return result;
}

const norm = (path: string) => path.replace(/\/+/g, '/').replace(/^\/|\/$/g, '');
const under = (dir: string) => IDBKeyRange.bound(`${dir}/`, `${dir}/\uffff`);

async function read(path: string): Promise<Uint8Array | string> {
  const value = await transact('readonly', (s) => done(s.get(norm(path))));
  if (value === undefined) throw new CheckpointError(`${path}: no such file in the browser's storage`);
  return value as Uint8Array | string;
}

/** IndexedDB as {@link RunFiles}. */
export const runFiles: RunFiles = {
  join: (...parts) => norm(parts.join('/')),
  isInside: (path, dir) => norm(path).split('/').slice(0, -1).join('/') === norm(dir),
  async exists(path) {
    const p = norm(path);
    return transact('readonly', async (s) => (await done(s.count(p))) > 0 || (await done(s.count(under(p)))) > 0);
  },
  async list(dir) {
    const p = norm(dir);
    const keys = (await transact('readonly', (s) => done(s.getAllKeys(under(p))))) as string[];
    return [...new Set(keys.map((k) => k.slice(p.length + 1).split('/')[0]!))];
  },
  async readBytes(path) {
    const v = await read(path);
    return typeof v === 'string' ? new TextEncoder().encode(v) : v;
  },
  async readText(path) {
    const v = await read(path);
    return typeof v === 'string' ? v : new TextDecoder().decode(v);
  },
  async writeFile(path, data) {
    await transact('readwrite', (s) => done(s.put(typeof data === 'string' ? data : data.slice(), norm(path))));
  },
  async appendText(path, text) {
    const p = norm(path);
    await transact('readwrite', async (s) => {
      const old = (await done(s.get(p))) as Uint8Array | string | undefined;
      const before = old === undefined ? '' : typeof old === 'string' ? old : new TextDecoder().decode(old);
      return done(s.put(before + text, p));
    });
  },
  async remove(path) {
    const p = norm(path);
    await transact('readwrite', async (s) => {
      await done(s.delete(p));
      await done(s.delete(under(p)));
    });
  },
  async rename(from, to) {
    const [f, t] = [norm(from), norm(to)];
    await transact('readwrite', async (s) => {
      const keys = [...((await done(s.getAllKeys(f))) as string[]), ...((await done(s.getAllKeys(under(f)))) as string[])];
      for (const key of keys) {
        const value = await done(s.get(key));
        await done(s.put(value, t + key.slice(f.length)));
        await done(s.delete(key));
      }
    });
  },
  async saveAdapter(model, dir, baseModel) {
    const stale = await staleTokenizerFiles(model, dir, await this.list(dir), (name) => this.readBytes(this.join(dir, name)));
    const { config, weights, tokenizer } = await serializeAdapter(model, baseModel);
    // One transaction: a closed tab or a full quota leaves the earlier adapter whole, never its config beside new weights.
    await transact('readwrite', async (s) => {
      for (const name of stale) await done(s.delete(norm(this.join(dir, name))));
      for (const [name, bytes] of tokenizer) await done(s.put(bytes.slice(), norm(this.join(dir, name))));
      await done(s.put(weights.slice(), norm(this.join(dir, adapterWeightsName))));
      await done(s.put(config, norm(this.join(dir, adapterConfigName))));
    });
  },
  async loadAdapter(model, dir, options) {
    const configPath = this.join(dir, adapterConfigName);
    const weightsPath = this.join(dir, adapterWeightsName);
    await loadAdapterFromFiles(model, await this.readText(configPath), configPath, bytesSource(weightsPath, await this.readBytes(weightsPath)), options);
  },
};
