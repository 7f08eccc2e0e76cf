// Saving a merged model over a folder holding an earlier model: the earlier model's files the new save does not write
// (a tokenizer.json that would be read before the new tokenizer.model, shards its index named, its
// generation_config.json) are removed and nothing else; a folder holding such files but no config.json is refused
// before anything is written.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaTokenizerDir, openCheckpoint, openCheckpointFromFiles, saveMergedModel, type Checkpoint } from '@huatuo/llama';
import { loadAdapterWithTokenizer, loadBaseModel } from '@huatuo/sft';
import { RESIZED_PIECES, RESIZED_TEXT, RESIZED_TOKENIZER_FILES, resizedAdapterFolder } from './resized-adapter-folder.js';
import { SMALL_MODEL, tmp } from './trainer-setup.js';

before(async () => {
  await initWebGPU();
});

/** Every file of `dir` by name, as bytes. */
function contents(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name))]));
}

/** Every tensor of the checkpoint by name, as f32. */
async function tensorsOf(ckpt: Checkpoint): Promise<Map<string, Float32Array>> {
  try {
    const out = new Map<string, Float32Array>();
    for await (const { info, data } of ckpt.iterateAs('f32')) out.set(info.name, data as Float32Array);
    return out;
  } finally {
    await ckpt.close();
  }
}

/** An earlier merged model in `dir`, saved with LLaMA's tokenizer (tokenizer.json and tokenizer.model) and sharded. */
async function saveEarlierModel(dir: string): Promise<void> {
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 3 });
  try {
    await saveMergedModel(model, dir, { tokenizerDir: llamaTokenizerDir(), maxShardBytes: 2_000_000 });
  } finally {
    model.dispose();
  }
  writeFileSync(join(dir, 'README.md'), 'notes\n');
  writeFileSync(join(dir, 'LICENSE'), 'license\n');
}

test("a resized adapter merged over an earlier model's folder loads with its own tokenizer, not the earlier tokenizer.json", async () => {
  const dir = tmp('huatuo-merged-');
  await saveEarlierModel(dir);
  assert.ok(readdirSync(dir).includes('tokenizer.json'));
  writeFileSync(join(dir, 'generation_config.json'), '{"max_new_tokens": 7}\n');
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  let ids: number[];
  try {
    const source = resizedAdapterFolder();
    await loadAdapterWithTokenizer(base, source);
    ids = base.tokenizer.encode(RESIZED_TEXT);
    assert.ok(ids.includes(32005), `the added token <med_5> is one id with the adapter's tokenizer: ${ids}`);
    await saveMergedModel(base.model, dir, { tokenizerDir: source });
  } finally {
    base.model.dispose();
  }
  assert.deepEqual(readdirSync(dir).sort(), ['LICENSE', 'README.md', 'config.json', 'model.safetensors', ...RESIZED_TOKENIZER_FILES].sort(), 'the earlier tokenizer.json, generation_config.json and shards are gone, the notes kept');
  const merged = await loadBaseModel(dir);
  try {
    assert.equal(merged.model.config.vocabSize, RESIZED_PIECES);
    assert.deepEqual(merged.tokenizer.encode(RESIZED_TEXT), ids, "the adapter's tokenizer, not the earlier tokenizer.json");
  } finally {
    merged.model.dispose();
  }
});

test("a model merged over a folder whose index named other shards loads the new weights only, the folder's other files kept", async () => {
  const dir = tmp('huatuo-merged-');
  await saveEarlierModel(dir);
  // The earlier model's shards under other names, as its index lists them (another tool's naming).
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const renamed = new Map([...new Set(Object.values(index.weight_map))].map((shard, i) => [shard, `consolidated.${i}.safetensors`]));
  for (const [from, to] of renamed) renameSync(join(dir, from), join(dir, to));
  for (const key of Object.keys(index.weight_map)) index.weight_map[key] = renamed.get(index.weight_map[key]!)!;
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  assert.ok((await tensorsOf(await openCheckpoint(dir))).size > 0, 'the earlier folder loads');
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 11 });
  const fresh = tmp('huatuo-merged-fresh-');
  try {
    await saveMergedModel(model, dir, { tokenizerDir: llamaTokenizerDir() });
    await saveMergedModel(model, fresh, { tokenizerDir: llamaTokenizerDir() });
  } finally {
    model.dispose();
  }
  assert.deepEqual(readdirSync(dir).sort(), ['LICENSE', 'README.md', ...readdirSync(fresh)].sort(), 'the earlier shards are gone, the notes kept');
  const expected = await tensorsOf(await openCheckpoint(fresh));
  assert.deepEqual(await tensorsOf(await openCheckpoint(dir)), expected);
  const files = readdirSync(dir).map((name) => new File([readFileSync(join(dir, name))], name));
  assert.deepEqual(await tensorsOf(await openCheckpointFromFiles(files)), expected, 'the folder picked in the browser loads the new weights');
});

test("a merged model saved over a model's folder without a tokenizer of its own to write keeps the folder's tokenizer and generation_config.json", async () => {
  const dir = tmp('huatuo-merged-');
  await saveEarlierModel(dir);
  writeFileSync(join(dir, 'generation_config.json'), '{"max_new_tokens": 7}\n');
  const kept = [...contents(dir)].filter(([name]) => name.startsWith('tokenizer') || name === 'special_tokens_map.json' || name === 'generation_config.json');
  assert.ok(kept.some(([name]) => name === 'tokenizer.json'));
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 5 });
  try {
    await saveMergedModel(model, dir);
  } finally {
    model.dispose();
  }
  const after = contents(dir);
  for (const [name, bytes] of kept) assert.ok(after.get(name)?.equals(bytes), `${name} is kept as it was`);
});

test('a merged model is not saved into a folder holding model files but no config.json, and nothing there changes', async () => {
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 5 });
  try {
    const others: [string, (file: string) => void][] = [
      ['tokenizer.json', (file) => copyFileSync(join(llamaTokenizerDir(), 'tokenizer.json'), file)],
      ['model.safetensors', (file) => writeFileSync(file, 'weights of something else')],
      ['generation_config.json', (file) => writeFileSync(file, '{"max_new_tokens": 7}\n')],
    ];
    for (const [name, write] of others) {
      const dir = tmp('huatuo-not-a-model-');
      write(join(dir, name));
      writeFileSync(join(dir, 'README.md'), 'notes\n');
      const before = contents(dir);
      await assert.rejects(saveMergedModel(model, dir), (err: Error) => {
        assert.ok(err.message.includes(`${dir} holds ${name} but no config.json`), err.message);
        assert.ok(err.message.includes(`move ${name} out of ${dir}`), err.message);
        return true;
      });
      assert.deepEqual(contents(dir), before, `${name}: nothing written, nothing removed`);
    }
    // Tokenizer files the save writes byte for byte are no conflict.
    const dir = tmp('huatuo-tokenizer-first-');
    copyFileSync(join(llamaTokenizerDir(), 'tokenizer.model'), join(dir, 'tokenizer.model'));
    await saveMergedModel(model, dir, { tokenizerDir: llamaTokenizerDir() });
    assert.ok(readdirSync(dir).includes('config.json'));
  } finally {
    model.dispose();
  }
});
