// The trainer's --lora-modules-to-save (PEFT's modules_to_save): embed_tokens and lm_head train in full as f32 copies
// with AdamW, are saved in PEFT's layout, resume exactly (the copies and their moments come back), train in mixed
// precision against f32 master copies, and are taken from an --init-adapter; an adapter with its own vocabulary loads
// with the tokenizer in its folder (serve's tokenizer thread too).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasF16, initWebGPU, toArray } from '@huatuo/tensor';
import { generate, llamaPresets, llamaTokenizerDir, openSafetensors, removeLora, saveMergedModel, serializeSafetensors } from '@huatuo/llama';
import { buildServeCommand } from '@huatuo/cli';
import { QWEN2_TOKENIZER_CONFIG, qwen2TokenizerJson } from '../llama/qwen2-tokenizer-files.js';
import { attachLora, ConfigError, listCheckpoints, loadAdapterWithTokenizer, loadBaseModel, prepareData, resolveConfig, train, trainingPlan, withInitAdapter, type TrainConfig, type TrainResult } from '@huatuo/sft';
import { SMALL_MODEL, smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

const EMBED = 'base_model.model.model.embed_tokens.weight';
const HEAD = 'base_model.model.lm_head.weight';
let dataPath: string;

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

test("--lora-modules-to-save is a recipe list checked by PEFT's rule, and --init-adapter takes an adapter's modules_to_save", async () => {
  assert.deepEqual(resolveConfig({ '--lora-modules-to-save': 'embed_tokens,lm_head' }).loraModulesToSave, ['embed_tokens', 'lm_head']);
  assert.deepEqual(resolveConfig({}).loraModulesToSave, []);
  assert.throws(() => resolveConfig({ '--lora-modules-to-save': 'lm_head,norm' }), (e: unknown) => e instanceof ConfigError && /^--lora-modules-to-save \(loraModulesToSave\): entry "norm" selects .*only embed_tokens and lm_head/.test(e.message));
  const base = { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] };
  const fromAdapter = (config: Record<string, unknown>, flags: Record<string, unknown> = {}, given: (keyof TrainConfig)[] = []) =>
    withInitAdapter({ join: (...p: string[]) => p.join('/'), readText: async () => JSON.stringify(config) }, resolveConfig(flags), 'init', given);
  assert.deepEqual((await fromAdapter({ ...base, modules_to_save: ['embed_tokens', 'lm_head'] })).loraModulesToSave, ['embed_tokens', 'lm_head']);
  assert.deepEqual((await fromAdapter({ ...base, modules_to_save: null })).loraModulesToSave, []);
  // LLaMA-7B's two [32000, 4096] copies: 16 bytes per weight (the f32 copy, its gradient, two AdamW moments).
  const plan = (modules: string) => trainingPlan(llamaPresets['llama-7b'], resolveConfig({ '--lora-modules-to-save': modules, '--cutoff-len': '256' }), 'f16', 4);
  const without = trainingPlan(llamaPresets['llama-7b'], resolveConfig({ '--cutoff-len': '256' }), 'f16', 4);
  const copies = 2 * 32000 * 4096 * 4;
  const withBoth = plan('embed_tokens,lm_head');
  assert.deepEqual([withBoth.lora - without.lora, withBoth.gradients - without.gradients, withBoth.optimizer - without.optimizer], [copies, copies, 2 * copies]);
  assert.equal(plan('embed_tokens').lora - without.lora, copies / 2);
  await assert.rejects(
    fromAdapter(base, { '--lora-modules-to-save': 'lm_head' }, ['loraModulesToSave']),
    (e: unknown) => e instanceof ConfigError && /--lora-modules-to-save \(loraModulesToSave\): lm_head contradicts the --init-adapter, whose modules_to_save is/.test(e.message),
  );
});

/** Trains with the base in `dtype`; returns the result and the trained copies. */
async function run(config: TrainConfig, dtype: 'f32' | 'f16', extra: { resume?: string; stopAfterStep?: number } = {}) {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL, dtype });
  try {
    const data = await prepareData(config, base);
    const model = attachLora(base, config);
    const result: TrainResult = await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, ...extra });
    const params = model.trainableParameters;
    return { result, names: [...params.keys()], embed: (await toArray(params.get(EMBED)!)) as Float32Array, head: (await toArray(params.get(HEAD)!)) as Float32Array };
  } finally {
    base.model.dispose();
  }
}

test('--lora-modules-to-save trains embed_tokens and lm_head in full, saves them in PEFT layout, and a resumed run takes the same steps', async () => {
  const overrides = { loraModulesToSave: ['embed_tokens', 'lm_head'], maxSteps: 4, saveSteps: 2, evalSteps: 2 };
  const outputDir = tmp();
  const full = await run(smallConfig(dataPath, outputDir, overrides), 'f32');
  assert.deepEqual(full.names.slice(-2), [EMBED, HEAD], 'the copies train after the LoRA matrices');
  const untrained = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  const baseHead = (await toArray(untrained.model.lmHead.parts[0]!)) as Float32Array;
  const baseEmbed = (await toArray(untrained.model.embedParts[0]!)) as Float32Array;
  untrained.model.dispose();
  assert.ok(full.head.some((v, i) => Math.abs(v - baseHead[i]!) > 1e-6), 'lm_head trains');
  assert.ok(full.embed.some((v, i) => Math.abs(v - baseEmbed[i]!) > 1e-6), 'embed_tokens trains');

  const saved = JSON.parse(readFileSync(join(outputDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(saved['modules_to_save'], ['embed_tokens', 'lm_head']);
  const st = await openSafetensors(join(outputDir, 'adapter_model.safetensors'));
  try {
    const shapes = new Map(st.tensors.map((t) => [t.name, t.shape]));
    assert.deepEqual(shapes.get(EMBED), [32000, 32]);
    assert.deepEqual(shapes.get(HEAD), [32000, 32]);
    assert.deepEqual(await st.readAs(HEAD, 'f32'), full.head, 'the saved lm_head is the trained copy');
  } finally {
    await st.close();
  }

  const again = tmp();
  await run(smallConfig(dataPath, again, overrides), 'f32', { stopAfterStep: 2 });
  const checkpoint = (await listCheckpoints(again)).find((c) => c.step === 2);
  assert.ok(checkpoint, 'a checkpoint at step 2');
  const resumed = await run(smallConfig(dataPath, again, overrides), 'f32', { resume: checkpoint.dir });
  for (const s of [3, 4]) assert.equal(resumed.result.stepLosses.get(s), full.result.stepLosses.get(s), `step ${s} loss after resuming`);
  assert.deepEqual(resumed.head, full.head, 'lm_head after resuming');
  assert.deepEqual(resumed.embed, full.embed, 'embed_tokens after resuming');
});

test('in mixed precision (f16 base) the copies are f32 masters and train as in f32, to f16 rounding', async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  const recipe = (precision: string) => smallConfig(dataPath, tmp(), { loraModulesToSave: ['embed_tokens', 'lm_head'], maxSteps: 6, evalSteps: 6, saveSteps: 6, learningRate: 3e-2, precision });
  const f32 = await run(recipe('f32'), 'f32');
  const mixed = await run(recipe('mixed'), 'f16');
  let worst = 0;
  for (const [s, a] of f32.result.stepLosses) worst = Math.max(worst, Math.abs(mixed.result.stepLosses.get(s)! - a) / Math.abs(a));
  t.diagnostic(`mixed vs f32: losses within ${worst.toExponential(2)} relative`);
  assert.ok(worst <= 1e-3, `mixed losses within ${worst} of f32's`);
  for (const [what, a, b] of [['lm_head', f32.head, mixed.head], ['embed_tokens', f32.embed, mixed.embed]] as const) {
    let num = 0;
    let den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i]! - b[i]!) ** 2;
      den += a[i]! ** 2;
    }
    const drift = Math.sqrt(num / den);
    t.diagnostic(`${what}: relative L2 difference ${drift.toExponential(2)}`);
    assert.ok(drift <= 2e-3, `relative L2 difference of the trained ${what}: ${drift}`);
  }
});

/** A PEFT adapter folder for the small test model whose embed_tokens and lm_head have `rows` pieces, with LLaMA's tokenizer or none. */
function adapter(rows: number, tokenizer: boolean): string {
  const dir = tmp('huatuo-adapter-');
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj'], modules_to_save: ['embed_tokens', 'lm_head'] }));
  const f32 = (n: number, scale: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * scale);
  const tensors = [
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', shape: [4, 32], data: f32(128, 0.1) },
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', shape: [32, 4], data: f32(128, 0.1) },
    { name: EMBED, shape: [rows, 32], data: f32(rows * 32, 0.02) },
    { name: HEAD, shape: [rows, 32], data: f32(rows * 32, 0.02) },
  ];
  writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors.map((t) => ({ ...t, dtype: 'F32' as const })), { metadata: { format: 'pt' } }));
  if (tokenizer) for (const f of ['tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(llamaTokenizerDir(), f), join(dir, f));
  return dir;
}

test("an adapter with its own vocabulary loads with the tokenizer in its folder, which generate, eval, merge and serve then use; without one it is refused naming --adapter", async () => {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  try {
    const own = base.tokenizer;
    await assert.rejects(loadAdapterWithTokenizer(base, adapter(32008, false)), (e: unknown) => e instanceof ConfigError && /^--adapter: .* vocabulary of 32008 pieces \(the base has 32000\), but holds no tokenizer/.test(e.message));
    await assert.rejects(loadAdapterWithTokenizer(base, adapter(31990, true)), (e: unknown) => e instanceof ConfigError && /has 32000 pieces, more than the 31990 rows/.test(e.message));
    removeLora(base.model);
    assert.equal(await loadAdapterWithTokenizer(base, adapter(32000, false)), null, 'an adapter keeping the vocabulary keeps the base tokenizer');
    assert.equal(base.tokenizer, own);
    removeLora(base.model);
    const dir = adapter(32008, true);
    assert.equal(await loadAdapterWithTokenizer(base, dir), dir);
    assert.equal(base.model.config.vocabSize, 32008);
    assert.notEqual(base.tokenizer, own, "the adapter folder's tokenizer is in use");
  } finally {
    base.model.dispose();
  }
});

test("serve with an adapter that brings its own vocabulary tokenizes on its thread with the adapter's tokenizer and answers as the adapted model", async () => {
  // A base folder (the small model, LLaMA's tokenizer) and an adapter on 300 pieces shipping another tokenizer (270 pieces).
  const baseDir = tmp('huatuo-base-');
  const demo = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  try {
    await saveMergedModel(demo.model, baseDir, { tokenizerDir: llamaTokenizerDir() });
  } finally {
    demo.model.dispose();
  }
  const dir = adapter(300, false);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(qwen2TokenizerJson()));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(QWEN2_TOKENIZER_CONFIG));
  const reference = await loadBaseModel(baseDir);
  let expected: string;
  try {
    assert.equal(await loadAdapterWithTokenizer(reference, dir), dir);
    const [g] = await generate(reference.model, reference.tokenizer, 'Hello world', { maxNewTokens: 4 });
    expected = g!.text;
  } finally {
    reference.model.dispose();
  }
  const seen: string[] = [];
  await buildServeCommand({
    out: () => {},
    err: () => {},
    until: async (server) => {
      const r = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', prompt: 'Hello world', max_tokens: 4, temperature: 0 }),
      });
      const body = (await r.json()) as { choices?: { text: string }[] };
      seen.push(body.choices?.[0]?.text ?? `HTTP ${r.status}: ${JSON.stringify(body)}`);
    },
  }).parseAsync(['--base', baseDir, '--adapter', dir, '--port', '0', '--model-name', 'm', '--quiet'], { from: 'user' });
  assert.deepEqual(seen, [expected]);
});
