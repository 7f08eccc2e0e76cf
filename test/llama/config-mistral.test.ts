// Mistral config.json (model_type "mistral"): LLaMA's fields plus sliding_window, with MistralConfig's
// defaults, refusals, and a round trip that writes MistralForCausalLM back.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { llamaPresets, parseLlamaConfig, toHfConfigJson } from '@huatuo/llama';
import { expectConfigError } from './config-errors.js';

// mistralai/Mistral-7B-v0.1's config.json.
const MISTRAL_7B = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.34.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};

test('Mistral-7B-v0.1 config.json parses as a mistral config with its 4096-key sliding window', () => {
  const cfg = parseLlamaConfig(MISTRAL_7B, 'config.json');
  assert.equal(cfg.modelType, 'mistral');
  assert.equal(cfg.slidingWindow, 4096);
  assert.deepEqual([cfg.hiddenSize, cfg.numAttentionHeads, cfg.numKeyValueHeads, cfg.headDim, cfg.intermediateSize], [4096, 32, 8, 128, 14336]);
  assert.equal(cfg.rmsNormEps, 1e-5);
  assert.equal(cfg.maxPositionEmbeddings, 32768);
});

test('sliding_window null means full causal attention (Mistral-7B-Instruct-v0.2 and later)', () => {
  assert.equal(parseLlamaConfig({ ...MISTRAL_7B, sliding_window: null }, 'config.json').slidingWindow, null);
});

test('absent Mistral fields take MistralConfig defaults: sliding_window 4096, 8 kv heads, 131072 positions', () => {
  const { sliding_window: _w, num_key_value_heads: _kv, max_position_embeddings: _p, ...rest } = MISTRAL_7B;
  const cfg = parseLlamaConfig(rest, 'config.json');
  assert.deepEqual([cfg.slidingWindow, cfg.numKeyValueHeads, cfg.maxPositionEmbeddings], [4096, 8, 131072]);
  assert.equal(parseLlamaConfig({ ...rest, num_key_value_heads: null }, 'config.json').numKeyValueHeads, 32);
});

test('a llama config has no sliding window, whatever sliding_window it carries', () => {
  const cfg = parseLlamaConfig({ ...MISTRAL_7B, model_type: 'llama' }, 'config.json');
  assert.equal(cfg.modelType, 'llama');
  assert.equal(cfg.slidingWindow, null);
  assert.equal(llamaPresets.tiny.slidingWindow, null);
});

test('toHfConfigJson writes a mistral config back as MistralForCausalLM with its sliding_window, and it parses back equal', () => {
  for (const window of [4096, 3, null]) {
    const cfg = parseLlamaConfig({ ...MISTRAL_7B, sliding_window: window }, 'config.json');
    const json = JSON.parse(JSON.stringify(toHfConfigJson(cfg))) as Record<string, unknown>;
    assert.deepEqual(json['architectures'], ['MistralForCausalLM']);
    assert.equal(json['model_type'], 'mistral');
    assert.equal(json['sliding_window'], window);
    assert.ok(!('pretraining_tp' in json) && !('attention_bias' in json), 'no LLaMA-only fields');
    assert.deepEqual(parseLlamaConfig(json, 'config.json'), cfg);
  }
  const llama = toHfConfigJson(llamaPresets.tiny);
  assert.deepEqual([llama['architectures'], llama['model_type'], 'sliding_window' in llama], [['LlamaForCausalLM'], 'llama', false]);
});

test('a malformed sliding_window or an unknown model_type is refused by name', () => {
  const file = 'models/mistral/config.json';
  for (const bad of [0, -5, 1.5, '4096', true]) {
    expectConfigError(() => parseLlamaConfig({ ...MISTRAL_7B, sliding_window: bad }, file), 'sliding_window', file, 'positive integer or null', JSON.stringify(bad));
  }
  expectConfigError(() => parseLlamaConfig({ ...MISTRAL_7B, model_type: 'mixtral' }, file), 'model_type', '"llama", "mistral" or "qwen2"', '"mixtral"');
});

test('head_dim other than hidden_size / heads (Mistral-Nemo: 128 with 5120 and 32 heads) is read and written back', () => {
  const nemo = parseLlamaConfig({ ...MISTRAL_7B, hidden_size: 5120, head_dim: 128, sliding_window: null }, 'config.json');
  assert.equal(nemo.headDim, 128);
  assert.deepEqual(parseLlamaConfig(JSON.parse(JSON.stringify(toHfConfigJson(nemo))), 'config.json'), nemo);
  // Without head_dim the width must divide evenly.
  expectConfigError(() => parseLlamaConfig({ ...MISTRAL_7B, hidden_size: 5000 }, 'c.json'), 'num_attention_heads', 'not divisible', 'head_dim');
});
