// --trust-tokenizer-patterns on every command that loads a model's or an adapter's tokenizer: a model folder whose
// tokenizer.json splits on \s+$ (as DeepSeek LLM's does, a pattern refused at load for backtracking on a long run of
// spaces) is refused by train, generate, eval and serve, naming the flag, and loads with it, on serve's tokenizer
// thread too; so is such a tokenizer in an adapter folder that brings its own vocabulary, which merge loads.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaTokenizerDir, saveMergedModel, serializeSafetensors } from '@huatuo/llama';
import { buildProgram } from '@huatuo/cli';
import { SMALL_MODEL, smallRecords, tmp, writeRecords } from '../sft/trainer-setup.js';
import { runScript, type ProcessRun } from './run-cli.js';

const FLAG = '--trust-tokenizer-patterns';

let modelDir: string;
let plainModelDir: string;
let adapterDir: string;
let dataPath: string;

/** LLaMA's tokenizer.json with a pre-tokenizer splitting on \s+$, as DeepSeek LLM's splits. */
function tokenizerJsonSplittingTrailingSpaces(): string {
  const json = JSON.parse(readFileSync(join(llamaTokenizerDir(), 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  return JSON.stringify({ ...json, pre_tokenizer: { type: 'Split', pattern: { Regex: '\\s+$' }, behavior: 'Isolated', invert: false } });
}

/** A PEFT adapter folder for the small model training embed_tokens and lm_head on 32008 pieces, with that tokenizer.json. */
function adapterFolder(): string {
  const dir = join(tmp(), 'resized-vocab-adapter');
  mkdirSync(dir);
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj'], modules_to_save: ['embed_tokens', 'lm_head'] }));
  const f32 = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.02);
  const tensors = [
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', shape: [4, 32], data: f32(128) },
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', shape: [32, 4], data: f32(128) },
    { name: 'base_model.model.model.embed_tokens.weight', shape: [32008, 32], data: f32(32008 * 32) },
    { name: 'base_model.model.lm_head.weight', shape: [32008, 32], data: f32(32008 * 32) },
  ];
  writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors.map((t) => ({ ...t, dtype: 'F32' as const })), { metadata: { format: 'pt' } }));
  writeFileSync(join(dir, 'tokenizer.json'), tokenizerJsonSplittingTrailingSpaces());
  copyFileSync(join(llamaTokenizerDir(), 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  return dir;
}

const run = (script: string, args: string[]): Promise<ProcessRun> => runScript(fileURLToPath(new URL(script, import.meta.url)), args);

before(async () => {
  await initWebGPU();
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 7 });
  modelDir = join(tmp(), 'split-trailing-spaces-llama');
  await saveMergedModel(model, modelDir, { tokenizerDir: llamaTokenizerDir() });
  plainModelDir = join(tmp(), 'plain-llama');
  await saveMergedModel(model, plainModelDir, { tokenizerDir: llamaTokenizerDir() });
  model.dispose();
  writeFileSync(join(modelDir, 'tokenizer.json'), tokenizerJsonSplittingTrailingSpaces());
  adapterDir = adapterFolder();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

const refusal = new RegExp(`tokenizer\\.json: pre_tokenizer\\.pattern\\.Regex is "\\\\\\\\s\\+\\$".*${FLAG}`);

test('every command that loads a model or an adapter takes --trust-tokenizer-patterns', () => {
  const program = buildProgram();
  for (const name of ['train', 'generate', 'eval', 'serve', 'merge']) {
    const command = program.commands.find((c) => c.name() === name);
    assert.ok(command?.options.some((o) => o.long === FLAG), `${name} takes ${FLAG}`);
  }
});

test("train --dry-run, generate and eval refuse the base's pattern without the flag, and merge the adapter's; each loads the tokenizer with it", async () => {
  const train = ['train', '--dry-run', '--base', modelDir, '--data', dataPath, '--output-dir', join(tmp(), 'out'), '--val-set-size', '2', '--batch-size', '4', '--micro-batch', '2'];
  const generate = ['generate', '--base', modelDir, '--prompt', '头痛怎么办？', '--num-beams', '1', '--max-new-tokens', '2', '--base-dtype', 'f32'];
  const evaluate = ['eval', '--base', modelDir, '--data', dataPath, '--base-dtype', 'f32'];
  const merge = ['merge', '--base', plainModelDir, '--adapter', adapterDir, '--out', join(tmp(), 'merged'), '--base-dtype', 'f32'];
  for (const args of [train, generate, evaluate, merge]) {
    const refused = await run('./cli-child.ts', args);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, refusal, args[0]);
    const trusted = await run('./cli-child.ts', [...args, FLAG]);
    assert.equal(trusted.code, 0, `${args[0]}: ${trusted.stderr}`);
  }
});

test("serve loads the trusted tokenizer on its tokenizer thread as on the main thread", async () => {
  const refused = await run('./serve-until-child.ts', ['--base', modelDir, '--base-dtype', 'f32']);
  assert.match(refused.stdout, /"error":".*trust-tokenizer-patterns/);
  const trusted = await run('./serve-until-child.ts', ['--base', modelDir, '--base-dtype', 'f32', FLAG]);
  const lines = trusted.stdout.trim().split('\n').map((l) => JSON.parse(l) as { url?: string; error?: string });
  assert.ok(lines[0]?.url?.startsWith('http://127.0.0.1:'), `the server started: ${trusted.stdout}${trusted.stderr}`);
  assert.deepEqual(lines[1], { error: 'until failed on purpose' });
});
