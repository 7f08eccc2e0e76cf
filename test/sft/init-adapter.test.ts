// The LoRA recipe's rsLoRA switch and --init-adapter: an adapter's use_rslora becomes the recipe's and is
// trained and saved as such; a flag contradicting it is refused; an adapter whose shape the flags cannot
// express (per-module ranks, layer subsets, regular-expression targets) is refused naming the file and the field.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, parsePeftConfig, serializeAdapter, type Tokenizer } from '@huatuo/llama';
import { attachLora, baseModelOf, ConfigError, resolveConfig, withInitAdapter, type TrainConfig } from '@huatuo/sft';
import { SMALL_MODEL } from './trainer-setup.js';

const base = { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] };

/** withInitAdapter over an adapter folder holding only `config` as adapter_config.json. */
function fromAdapter(config: Record<string, unknown>, flags: Record<string, unknown> = {}) {
  const files = { join: (...p: string[]) => p.join('/'), readText: async () => JSON.stringify(config) };
  const given = Object.keys(flags).map((f) => f.replace(/^--/, '').replace(/-(\w)/g, (_, c: string) => c.toUpperCase()) as keyof TrainConfig);
  return withInitAdapter(files, resolveConfig(flags), 'init', given);
}

before(async () => {
  await initWebGPU();
});

test("--init-adapter takes the adapter's use_rslora, and refuses --lora-use-rslora contradicting it", async () => {
  assert.equal((await fromAdapter({ ...base, use_rslora: true })).loraUseRslora, true);
  assert.equal((await fromAdapter(base)).loraUseRslora, false);
  await assert.rejects(fromAdapter(base, { '--lora-use-rslora': 'true' }), (e: unknown) => e instanceof ConfigError && /--lora-use-rslora \(loraUseRslora\): true contradicts the --init-adapter, whose use_rslora is false \(init\/adapter_config\.json\)/.test(e.message));
  assert.deepEqual((await fromAdapter({ ...base, target_modules: 'all-linear' })).loraTargetModules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
});

test('--init-adapter refuses an adapter whose shape the --lora-* flags cannot express, naming the file and the field', async () => {
  for (const [extra, field] of [
    [{ rank_pattern: { q_proj: 2 } }, 'rank_pattern'],
    [{ alpha_pattern: { q_proj: 2 } }, 'alpha_pattern'],
    [{ layers_to_transform: [0] }, 'layers_to_transform'],
    [{ exclude_modules: ['v_proj'] }, 'exclude_modules'],
    [{ target_modules: '.*\\.q_proj' }, 'target_modules'],
    [{ target_modules: ['self_attn.q_proj'] }, 'target_modules'],
  ] as const) {
    await assert.rejects(fromAdapter({ ...base, ...extra }), (e: unknown) => e instanceof ConfigError && e.message.includes('init/adapter_config.json') && e.message.includes(field), field);
  }
});

test('--lora-use-rslora trains with alpha / sqrt(r) and saves use_rslora: true', async () => {
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 1 });
  try {
    attachLora(baseModelOf(model, null as unknown as Tokenizer, 'tiny', true), resolveConfig({ '--lora-r': '4', '--lora-alpha': '8', '--lora-use-rslora': 'true' }));
    assert.deepEqual(model.linears().filter((l) => l.lora !== null).map((l) => l.lora!.scaling), [4, 4]);
    const saved = JSON.parse((await serializeAdapter(model, 'tiny')).config) as Record<string, unknown>;
    assert.equal(saved['use_rslora'], true);
    assert.equal(parsePeftConfig(saved, 'adapter_config.json').useRslora, true);
  } finally {
    model.dispose();
  }
});
