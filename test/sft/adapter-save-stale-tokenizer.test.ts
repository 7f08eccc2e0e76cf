// Saving an adapter that brings its own vocabulary into a folder that already holds tokenizer files: an earlier
// adapter's folder loses those of its tokenizer files the new adapter does not write (a stale tokenizer.json would be
// read before the adapter's tokenizer.model), any other folder is refused before anything is written, and an adapter on
// the base's vocabulary leaves the folder's tokenizer files alone. A training run whose final adapter would be refused
// so is refused before its first step.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, llamaTokenizerDir, saveAdapter, saveMergedModel } from '@huatuo/llama';
import { ConfigError, loadAdapterWithTokenizer, loadBaseModel, runTraining, type BaseModel } from '@huatuo/sft';
import { RESIZED_TEXT, RESIZED_TOKENIZER_FILES, resizedAdapterFolder } from './resized-adapter-folder.js';
import { SMALL_MODEL, smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

before(async () => {
  await initWebGPU();
});

/** The small demo base with the resized adapter loaded with its tokenizer, and the ids it gives RESIZED_TEXT. */
async function resizedBase(): Promise<{ base: BaseModel; ids: number[] }> {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  const source = resizedAdapterFolder();
  assert.equal(await loadAdapterWithTokenizer(base, source), source);
  return { base, ids: base.tokenizer.encode(RESIZED_TEXT) };
}

/** Every file of `dir` by name, as bytes. */
function contents(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name))]));
}

test("a resized adapter saved over an earlier adapter's folder holding another tokenizer.json loads back with its own tokenizer", async () => {
  const { base, ids } = await resizedBase();
  const dir = tmp('huatuo-stale-');
  try {
    assert.ok(ids.includes(32005), `the added token <med_5> is one id with the adapter's tokenizer: ${ids}`);
    // An earlier adapter on the base's vocabulary, saved with the base's tokenizer.json and a note beside it.
    const plain = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
    try {
      applyLora(plain.model, { r: 4, alpha: 8, targetModules: ['q_proj'] });
      await saveAdapter(plain.model, dir);
    } finally {
      plain.model.dispose();
    }
    copyFileSync(join(llamaTokenizerDir(), 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'README.md'), 'notes\n');
    await saveAdapter(base.model, dir);
    assert.deepEqual(readdirSync(dir).sort(), ['README.md', 'adapter_config.json', 'adapter_model.safetensors', ...RESIZED_TOKENIZER_FILES].sort(), 'the stale tokenizer.json is gone, the note kept');
  } finally {
    base.model.dispose();
  }
  const again = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  try {
    assert.equal(await loadAdapterWithTokenizer(again, dir), dir);
    assert.deepEqual(again.tokenizer.encode(RESIZED_TEXT), ids, "the adapter's tokenizer, not the stale tokenizer.json");
  } finally {
    again.model.dispose();
  }
});

test('a resized adapter is not saved into a folder that holds other tokenizer files but no adapter, and nothing there changes', async () => {
  const { base } = await resizedBase();
  try {
    // A model's folder: the base's tokenizer.json, or a tokenizer_config.json other than the adapter's.
    const others: [string, (file: string) => void][] = [
      ['tokenizer.json', (file) => copyFileSync(join(llamaTokenizerDir(), 'tokenizer.json'), file)],
      ['tokenizer_config.json', (file) => writeFileSync(file, '{"model_max_length": 2048}\n')],
    ];
    for (const [name, write] of others) {
      const dir = tmp('huatuo-model-folder-');
      write(join(dir, name));
      writeFileSync(join(dir, 'config.json'), '{}\n');
      const before = contents(dir);
      await assert.rejects(saveAdapter(base.model, dir), (err: Error) => {
        assert.ok(err.message.includes(`${dir} holds ${name}`), err.message);
        assert.ok(err.message.includes(`move ${name} out of ${dir}`), err.message);
        return true;
      });
      assert.deepEqual(contents(dir), before, `${name}: nothing written, nothing removed`);
    }
    // The same tokenizer.model as the adapter's, byte for byte, is no conflict.
    const dir = tmp('huatuo-model-folder-');
    copyFileSync(join(llamaTokenizerDir(), 'tokenizer.model'), join(dir, 'tokenizer.model'));
    await saveAdapter(base.model, dir);
    assert.deepEqual(readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.safetensors', ...RESIZED_TOKENIZER_FILES].sort());
  } finally {
    base.model.dispose();
  }
});

test("an adapter on the base's vocabulary saved over an adapter folder leaves the tokenizer files there as they are", async () => {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  try {
    const dir = resizedAdapterFolder();
    copyFileSync(join(llamaTokenizerDir(), 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const tokenizerBefore = [...contents(dir)].filter(([name]) => !name.startsWith('adapter_'));
    applyLora(base.model, { r: 4, alpha: 8, targetModules: ['q_proj'] });
    await saveAdapter(base.model, dir);
    assert.deepEqual([...contents(dir)].filter(([name]) => !name.startsWith('adapter_')), tokenizerBefore);
  } finally {
    base.model.dispose();
  }
});

test('train --init-adapter with its own vocabulary refuses, before the first step, an --output-dir holding tokenizer files but no adapter', async () => {
  const baseDir = join(tmp(), 'base');
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 7 });
  await saveMergedModel(model, baseDir, { tokenizerDir: llamaTokenizerDir() });
  model.dispose();
  const dataPath = writeRecords(tmp(), smallRecords(4));
  const outputDir = tmp('huatuo-model-folder-');
  copyFileSync(join(llamaTokenizerDir(), 'tokenizer.json'), join(outputDir, 'tokenizer.json'));
  const config = smallConfig(dataPath, outputDir, { baseModel: baseDir, cutoffLen: 128, maxSteps: 1, precision: 'f32' });
  for (const dryRun of [true, false]) {
    await assert.rejects(runTraining({ config, initAdapter: resizedAdapterFolder(), dryRun }), (err: Error) => {
      assert.ok(err instanceof ConfigError && err.flag === '--output-dir', String(err));
      assert.ok(err.message.includes(`${outputDir} holds tokenizer.json`), err.message);
      return true;
    });
    assert.deepEqual(readdirSync(outputDir), ['tokenizer.json'], 'nothing written');
  }
  // An adapter on the base's vocabulary writes no tokenizer there, and trains.
  const plain = await runTraining({ config, dryRun: true });
  plain.base.model.dispose();
});
