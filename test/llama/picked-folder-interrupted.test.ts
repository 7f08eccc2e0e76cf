// A folder picked in a browser (its files with their paths, as <input webkitdirectory> gives them) after a save of an
// adapter or a merged model into it was killed at each of its changes to the file system: the files-based loaders read
// what Node's loaders read from that folder (which complete a committed save first), byte for byte: never the staging
// folder's files as the folder's own, never a mix of the earlier save and the new one.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import {
  configFromPreset,
  createRandomLlama,
  finishInterruptedSave,
  loadAdapter,
  loadTokenizer,
  llamaTokenizerDir,
  openCheckpointFromFiles,
  pickedFolderFiles,
  saveStagingName,
  serializeAdapter,
  type LlamaModel,
} from '@huatuo/llama';
import { baseModelOf } from '@huatuo/sft';
import { uploadAdapter } from '../../apps/web/src/adapter-io.js';
import { childSave } from './folder-save-run.js';
import { saveVersion } from './folder-save-versions.js';

before(async () => {
  await initWebGPU();
});

/** The files under `dir` as a browser gives a picked folder named `picked`: File objects with webkitRelativePath. */
function pick(dir: string, root = dir, out: File[] = []): File[] {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) pick(path, root, out);
    else out.push(Object.defineProperty(new File([readFileSync(path)], name), 'webkitRelativePath', { value: `picked/${relative(root, path)}` }));
  }
  return out;
}

function copyOf(dir: string): string {
  const copy = mkdtempSync(join(tmpdir(), 'huatuo-picked-'));
  cpSync(dir, copy, { recursive: true });
  return copy;
}

async function bytesOf(files: Map<string, File>): Promise<Map<string, Buffer>> {
  return new Map(await Promise.all([...files].map(async ([name, f]) => [name, Buffer.from(await f.arrayBuffer())] as const)));
}

/** What Node's loaders read from `dir`: its files once finishInterruptedSave has completed a committed save (on a copy). */
async function nodeView(dir: string): Promise<{ dir: string; files: Map<string, Buffer> }> {
  const copy = copyOf(dir);
  await finishInterruptedSave(copy, { keepUncommitted: true });
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(copy).sort()) if (statSync(join(copy, name)).isFile()) files.set(name, readFileSync(join(copy, name)));
  return { dir: copy, files };
}

/** Every tensor of the checkpoint in the picked files, by name, as raw bytes. */
async function tensorsOf(files: File[]): Promise<Map<string, Buffer>> {
  const ckpt = await openCheckpointFromFiles(files);
  try {
    const out = new Map<string, Buffer>();
    for await (const { info, data } of ckpt.iterate()) out.set(info.name, Buffer.from(data));
    return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
  } finally {
    await ckpt.close();
  }
}

const smallModel = (): LlamaModel =>
  createRandomLlama(configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 }), { seed: 9 });

/** The adapter as the page's loader reads it from the picked files, and as Node's loadAdapter reads `dir`, serialized. */
async function adapterViews(files: File[], dir: string): Promise<{ picked: Uint8Array; node: Uint8Array }> {
  const tokenizer = await loadTokenizer(llamaTokenizerDir());
  const [a, b] = [smallModel(), smallModel()];
  try {
    await uploadAdapter(baseModelOf(a, tokenizer, 'base', false), files, {});
    await loadAdapter(b, dir);
    return { picked: (await serializeAdapter(a, 'base')).weights, node: (await serializeAdapter(b, 'base')).weights };
  } finally {
    a.dispose();
    b.dispose();
  }
}

for (const kind of ['adapter', 'model'] as const) {
  test(`a picked folder holding ${kind === 'adapter' ? 'an adapter' : 'a model'} save killed at any of its changes reads as Node's loaders read it`, async () => {
    const old = mkdtempSync(join(tmpdir(), `huatuo-picked-${kind}-`));
    await saveVersion(kind, old, 'old');
    writeFileSync(join(old, 'README.md'), 'notes\n');
    const full = await childSave(kind, copyOf(old), 0);
    assert.equal(full.signal, null, full.stderr);
    const seen = { none: 0, uncommitted: 0, committed: 0 };
    const killAts = Array.from({ length: full.changes! }, (_, i) => i + 1);
    for (let i = 0; i < killAts.length; i += 2) {
      const pair = killAts.slice(i, i + 2).map((killAt) => ({ killAt, dir: copyOf(old) }));
      const runs = await Promise.all(pair.map(({ killAt, dir }) => childSave(kind, dir, killAt)));
      for (const [j, { killAt, dir }] of pair.entries()) {
        const where = `killed at change ${killAt} of ${full.changes}`;
        assert.equal(runs[j]!.signal, 'SIGKILL', `${where}: ${runs[j]!.stderr}`);
        const files = pick(dir);
        const node = await nodeView(dir);
        const picked = await pickedFolderFiles(files);
        seen[picked.save]++;
        const staged = readdirSync(dir).includes(saveStagingName) && readdirSync(join(dir, saveStagingName)).length > 0;
        assert.equal(picked.save !== 'none', staged, `${where}: a staging folder holding files is seen where there is one`);
        assert.deepEqual(await bytesOf(picked.files), node.files, `${where}: the picked folder's files are those Node reads, byte for byte`);
        if (kind === 'model') {
          assert.deepEqual(await tensorsOf(files), await tensorsOf(pick(node.dir)), `${where}: openCheckpointFromFiles reads the weights Node reads`);
        } else {
          const { picked: fromPicked, node: fromNode } = await adapterViews(files, node.dir);
          assert.ok(Buffer.from(fromPicked).equals(Buffer.from(fromNode)), `${where}: the page's adapter loader reads the adapter Node reads`);
        }
      }
    }
    assert.ok(seen.uncommitted > 0 && seen.committed > 0, `the kills left staging folders before and after the commit: ${JSON.stringify(seen)}`);
  });
}
