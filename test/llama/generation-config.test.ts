// generation_config.json: its eos_token_id is what Hugging Face's generate stops at in place of
// config.json's (Llama-3-Instruct lists <|eot_id|> there), read by loadLlamaConfig and used by generate.
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initWebGPU } from '@huatuo/tensor';
import { ModelConfigError, configFromPreset, generate, loadLlama, loadLlamaConfig, saveMergedModel, withGenerationConfig } from '@huatuo/llama';
import { fixtureDir, readReference } from './fixtures.js';

const dirs: string[] = [];
/** A copy of the gqa fixture folder with `generation` as its generation_config.json text (none when undefined). */
function folder(generation?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-gencfg-'));
  dirs.push(dir);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(fixtureDir('gqa'), f), join(dir, f));
  if (generation !== undefined) writeFileSync(join(dir, 'generation_config.json'), generation);
  return dir;
}

before(async () => {
  await initWebGPU();
});
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('withGenerationConfig takes eos_token_id as an id or a list, keeps config.json\'s, and refuses a malformed one by file and field', () => {
  const config = configFromPreset('tiny');
  assert.deepEqual(withGenerationConfig(config, { eos_token_id: [2, 7] }, 'g.json').generationEosTokenIds, [2, 7]);
  assert.deepEqual(withGenerationConfig(config, { eos_token_id: 5, do_sample: true }, 'g.json').generationEosTokenIds, [5]);
  assert.equal(withGenerationConfig(config, { temperature: 0.6 }, 'g.json'), config, 'no eos_token_id: the config as it is');
  assert.deepEqual(withGenerationConfig(config, { eos_token_id: [2, 7] }, 'g.json').eosTokenIds, config.eosTokenIds);
  assert.throws(() => withGenerationConfig(config, { eos_token_id: [] }, 'g.json'), (e) => e instanceof ModelConfigError && /g\.json.*eos_token_id.*non-empty list/.test(e.message));
  assert.throws(() => withGenerationConfig(config, { eos_token_id: config.vocabSize }, 'g.json'), (e) => e instanceof ModelConfigError && /g\.json.*eos_token_id.*expected a token id in \[0, /.test(e.message));
  assert.throws(() => withGenerationConfig(config, [1], 'g.json'), (e) => e instanceof ModelConfigError && /g\.json.*expected a JSON object/.test(e.message));
});

test('loadLlamaConfig reads generation_config.json beside config.json, and names it when it is not JSON', async () => {
  assert.equal((await loadLlamaConfig(folder())).generationEosTokenIds, undefined);
  assert.deepEqual((await loadLlamaConfig(folder('{"eos_token_id": [2, 9]}'))).generationEosTokenIds, [2, 9]);
  const broken = folder('{"eos_token_id": ');
  await assert.rejects(loadLlamaConfig(broken), (e) => e instanceof ModelConfigError && e.message.includes(join(broken, 'generation_config.json')) && /not valid JSON/.test(e.message));
});

test('a generation_config.json that cannot be read (a folder) is named, with its errno', async () => {
  const dir = folder();
  mkdirSync(join(dir, 'generation_config.json'));
  await assert.rejects(loadLlamaConfig(dir), (e) => e instanceof ModelConfigError && e.message.includes(join(dir, 'generation_config.json')) && /cannot be read \(EISDIR\)/.test(e.message));
});

test('generate stops at generation_config.json\'s eos ids, as Hugging Face generate does', async () => {
  const g = readReference('gqa').generation!;
  const plain = await loadLlama(folder());
  const free = await generate(plain, null, [g.prompts[0]!], { maxNewTokens: 6, eosTokenIds: [] });
  plain.dispose();
  const stopAt = free[0]!.tokens[2]!;
  assert.ok(!free[0]!.tokens.slice(0, 2).includes(stopAt), 'the chosen stop token first appears at step 2');
  const model = await loadLlama(folder(JSON.stringify({ eos_token_id: [stopAt] })));
  try {
    const out = await generate(model, null, [g.prompts[0]!], { maxNewTokens: 6 });
    assert.deepEqual(out[0]!.tokens, free[0]!.tokens.slice(0, 3));
    assert.equal(out[0]!.finishReason, 'eos');
  } finally {
    model.dispose();
  }
});

test('a merged model folder keeps the base folder\'s generation_config.json and chat_template.jinja', async () => {
  const base = folder(JSON.stringify({ eos_token_id: [2, 9] }));
  writeFileSync(join(base, 'chat_template.jinja'), '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}');
  const model = await loadLlama(base);
  const out = mkdtempSync(join(tmpdir(), 'huatuo-gencfg-out-'));
  dirs.push(out);
  try {
    await saveMergedModel(model, out, { tokenizerDir: base });
  } finally {
    model.dispose();
  }
  for (const f of ['generation_config.json', 'chat_template.jinja']) assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(base, f), 'utf8'), f);
  assert.deepEqual((await loadLlamaConfig(out)).generationEosTokenIds, [2, 9]);
});
