// The trainer's DoRA switch: --lora-use-dora trains A, B and the magnitudes m, saves use_dora and the magnitude
// vectors, and resumes exactly (m and its AdamW moments come back); --init-adapter takes an adapter's use_dora.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU, toArray } from '@huatuo/tensor';
import { openSafetensors } from '@huatuo/llama';
import { ConfigError, listCheckpoints, resolveConfig, train, withInitAdapter, type TrainConfig, type TrainResult } from '@huatuo/sft';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

before(async () => {
  await initWebGPU();
});

test("--lora-use-dora is a recipe switch, and --init-adapter takes an adapter's use_dora and refuses a flag contradicting it", async () => {
  assert.equal(resolveConfig({ '--lora-use-dora': 'true' }).loraUseDora, true);
  assert.equal(resolveConfig({}).loraUseDora, false);
  const base = { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] };
  const fromAdapter = (config: Record<string, unknown>, flags: Record<string, unknown> = {}, given: (keyof TrainConfig)[] = []) =>
    withInitAdapter({ join: (...p: string[]) => p.join('/'), readText: async () => JSON.stringify(config) }, resolveConfig(flags), 'init', given);
  assert.equal((await fromAdapter({ ...base, use_dora: true })).loraUseDora, true);
  assert.equal((await fromAdapter(base)).loraUseDora, false);
  await assert.rejects(fromAdapter(base, { '--lora-use-dora': 'true' }, ['loraUseDora']), (e: unknown) => e instanceof ConfigError && /--lora-use-dora \(loraUseDora\): true contradicts the --init-adapter, whose use_dora is false/.test(e.message));
});

async function run(config: TrainConfig, stopAfterStep: number, resume: string | null = null): Promise<{ result: TrainResult; magnitude: Float32Array }> {
  const { data, model, base } = await smallRun(config);
  try {
    const result = await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, resume, stopAfterStep });
    const m = base.model.layers[0]!.qProj.lora!.magnitude!;
    return { result, magnitude: (await toArray(m)) as Float32Array };
  } finally {
    base.model.dispose();
  }
}

test('--lora-use-dora trains and saves the magnitudes, and a resumed run takes the same steps', async () => {
  const dataPath = writeRecords(tmp(), smallRecords(12));
  const overrides = { loraUseDora: true, saveSteps: 2, evalSteps: 2 };
  const { data, model, base } = await smallRun(smallConfig(dataPath, tmp(), overrides));
  const names = [...model.trainableParameters.keys()];
  const initial = (await toArray(base.model.layers[0]!.qProj.lora!.magnitude!)) as Float32Array;
  base.model.dispose();
  assert.ok(data.train.length > 0);
  assert.deepEqual(names.filter((k) => k.endsWith('lora_magnitude_vector')), [
    'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector',
    'base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector',
  ]);

  const outputDir = tmp();
  const full = await run(smallConfig(dataPath, outputDir, overrides), 4);
  assert.ok(full.magnitude.some((v, i) => Math.abs(v - initial[i]!) > 1e-6), 'm trains');
  const saved = JSON.parse(readFileSync(join(outputDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(saved['use_dora'], true);
  const st = await openSafetensors(join(outputDir, 'adapter_model.safetensors'));
  try {
    assert.deepEqual(st.tensors.filter((t) => t.name.endsWith('lora_magnitude_vector')).map((t) => t.shape), [[32], [32]]);
  } finally {
    await st.close();
  }

  const again = tmp();
  await run(smallConfig(dataPath, again, overrides), 2);
  const checkpoint = (await listCheckpoints(again)).find((c) => c.step === 2);
  assert.ok(checkpoint, 'a checkpoint at step 2');
  const resumed = await run(smallConfig(dataPath, again, overrides), 4, checkpoint.dir);
  for (const s of [3, 4]) assert.equal(resumed.result.stepLosses.get(s), full.result.stepLosses.get(s), `step ${s} loss after resuming`);
  assert.deepEqual(resumed.magnitude, full.magnitude, 'm after resuming');
});
