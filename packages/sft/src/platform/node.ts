// Run files in Node: the file system (writes atomic and flushed to disk), and PEFT adapter
// folders written by @huatuo/llama.

import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadAdapter, saveAdapter, syncDir, writeFileAtomic } from '@huatuo/llama';
import type { RunFiles } from '../run-files.js';

/** Node's file system as {@link RunFiles}. */
export const runFiles: RunFiles = {
  join: (...parts) => join(...parts),
  isInside: (path, dir) => dirname(resolve(path)) === resolve(dir),
  exists: async (path) => existsSync(path),
  list: async (dir) => (existsSync(dir) ? readdir(dir) : []),
  readBytes: async (path) => new Uint8Array(await readFile(path)),
  readText: (path) => readFile(path, 'utf8'),
  async writeFile(path, data) {
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, data);
  },
  async appendText(path, text) {
    await mkdir(dirname(path), { recursive: true });
    await appendFile(path, text);
  },
  remove: (path) => rm(path, { recursive: true, force: true }),
  async rename(from, to) {
    await rename(from, to);
    await syncDir(dirname(to));
  },
  saveAdapter: (model, dir, baseModel) => saveAdapter(model, dir, baseModel),
  loadAdapter: (model, dir, options) => loadAdapter(model, dir, options),
};
