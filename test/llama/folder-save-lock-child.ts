// Saves a version of folder-save-versions.ts into a folder as a child process, optionally pausing part way until told
// to go on: 'staged' before the commit is written (the staging folder holds every file), 'committed' before the first
// file is renamed in. folder-save-lock.test.ts runs it beside other saves and loads of the folder.
// Arguments: adapter|model, the folder, old|new, none|staged|committed, and how many times to save (default 1). Prints
// `paused` where it pauses (then waits for a line on stdin), and how each save ended, a line each: `{"saved": true}`
// or `{"error": {name, message}}`.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { basename, dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { initWebGPU } from '@huatuo/tensor';
import { saveStagingName } from '@huatuo/llama';
import { saveVersion } from './folder-save-versions.js';

const [kind, dir, version, pauseAt, times] = process.argv.slice(2) as ['adapter' | 'model', string, 'old' | 'new', 'none' | 'staged' | 'committed', string | undefined];
const staging = resolve(dir, saveStagingName);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Whether the fs call `name(args)` is the point to pause at. */
function pausesAt(name: string, args: unknown[]): boolean {
  const path = resolve(String(args[0]));
  if (pauseAt === 'staged') return name === 'open' && dirname(path) === staging && basename(path).startsWith('.commit.json.');
  if (pauseAt === 'committed') return name === 'rename' && dirname(path) === staging && dirname(resolve(String(args[1]))) === resolve(dir);
  return false;
}

const promises = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
let paused = false;
for (const name of ['open', 'rename']) {
  const original = promises[name]!;
  promises[name] = async (...args: unknown[]) => {
    if (!paused && pausesAt(name, args)) {
      paused = true;
      process.stdout.write('paused\n');
      await lines.next();
    }
    return original.apply(fs.promises, args);
  };
}
syncBuiltinESMExports();

await initWebGPU();
for (let i = 0; i < Number(times ?? 1); i++) {
  try {
    await saveVersion(kind, dir, version);
    process.stdout.write(`${JSON.stringify({ saved: true })}\n`);
  } catch (err) {
    const e = err as Error;
    process.stdout.write(`${JSON.stringify({ error: { name: e.name, message: e.message } })}\n`);
  }
}
process.exit(0);
