// merge into an --out folder that the save would refuse (another model's tokenizer or weights but no config.json) is
// refused before the base model loads, with the save's message, with or without --overwrite; a folder holding the
// base's own tokenizer files is not. A folder left by an interrupted save is cleaned up, saying so.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, llamaTokenizerDir, saveAdapter, saveMergedModel, saveStagingName } from '@huatuo/llama';
import { SMALL_MODEL, tmp } from '../sft/trainer-setup.js';
import { runCli } from './run-cli.js';

let modelDir: string;
let adapterDir: string;
/** The small model's folder with its weights file broken: loading it fails, after its config and tokenizer are read. */
let brokenModelDir: string;

before(async () => {
  await initWebGPU();
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 7 });
  try {
    modelDir = join(tmp(), 'small-llama');
    await saveMergedModel(model, modelDir, { tokenizerDir: llamaTokenizerDir() });
    applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj'] }, { seed: 3 });
    adapterDir = join(tmp(), 'adapter');
    await saveAdapter(model, adapterDir, modelDir);
  } finally {
    model.dispose();
  }
  brokenModelDir = join(tmp(), 'broken-llama');
  cpSync(modelDir, brokenModelDir, { recursive: true });
  writeFileSync(join(brokenModelDir, 'model.safetensors'), 'not a safetensors file');
});

/** Every file of `dir` by name, as bytes. */
function contents(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name))]));
}

test('merge into a folder holding another tokenizer but no config.json is refused before the base loads, with the save message', async () => {
  for (const overwrite of [[], ['--overwrite']]) {
    const out = tmp('huatuo-tokenizer-only-');
    writeFileSync(join(out, 'tokenizer.json'), '{"model": {"type": "BPE"}}\n');
    writeFileSync(join(out, 'README.md'), 'notes\n');
    const before = contents(out);
    // The message saveMergedModel gives for this folder.
    const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 7 });
    const expected = await saveMergedModel(model, out, { tokenizerDir: modelDir }).then(
      () => assert.fail('saveMergedModel writes into the folder'),
      (err: Error) => err.message,
    );
    model.dispose();
    assert.ok(expected.includes(`${out} holds tokenizer.json but no config.json`), expected);
    // A base that would fail to load: the refusal comes first.
    const r = await runCli(['merge', '--base', brokenModelDir, '--adapter', adapterDir, '--out', out, ...overwrite]);
    assert.equal(r.code, 1, r.stdout);
    assert.ok(r.stderr.includes(expected), `${overwrite.join(' ')}: ${r.stderr}`);
    assert.deepEqual(contents(out), before, 'nothing written, nothing removed');
  }
});

test("merge into a folder holding the base's own tokenizer files writes the model there", async () => {
  const out = tmp('huatuo-tokenizer-first-');
  for (const name of ['tokenizer.json', 'tokenizer.model']) copyFileSync(join(modelDir, name), join(out, name));
  const r = await runCli(['merge', '--base', modelDir, '--adapter', adapterDir, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(readdirSync(out).includes('config.json'));
  // The same folder with the broken base fails at the load, not at the folder check.
  const again = tmp('huatuo-tokenizer-first-');
  for (const name of ['tokenizer.json', 'tokenizer.model']) copyFileSync(join(modelDir, name), join(again, name));
  const broken = await runCli(['merge', '--base', brokenModelDir, '--adapter', adapterDir, '--out', again]);
  assert.equal(broken.code, 1);
  assert.ok(!broken.stderr.includes('no config.json'), broken.stderr);
  assert.ok(broken.stderr.includes('model.safetensors'), broken.stderr);
});

test('merge into a folder left by an interrupted save says what it found: an uncommitted staging folder is removed, the earlier model kept', async () => {
  const out = tmp('huatuo-interrupted-');
  cpSync(modelDir, out, { recursive: true });
  const before = contents(out);
  // A save killed while writing its shards: the staging folder holds part of them and no commit.
  mkdirSync(join(out, saveStagingName));
  writeFileSync(join(out, saveStagingName, 'model-00001-of-00002.safetensors'), 'part of a shard');
  const r = await runCli(['merge', '--base', brokenModelDir, '--adapter', adapterDir, '--out', out]);
  assert.equal(r.code, 1, 'refused: --out holds a model and --overwrite is not given');
  assert.ok(r.stdout.includes(`${out}: removed ${saveStagingName}, left by an earlier save there that was interrupted before all its files were written`), r.stdout);
  assert.deepEqual(contents(out), before, 'the earlier model as it was, the staging folder gone');
});
