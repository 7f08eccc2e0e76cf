// Qwen2 config.json (model_type "qwen2"): LLaMA's fields with Qwen2Config's defaults, the window fields read
// as Qwen2Config reads them (unused unless use_sliding_window), refusals, a round trip that writes
// Qwen2ForCausalLM back, and the q, k and v biases in the expected weights and the memory plan.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { configFromPreset, expectedWeights, parseLlamaConfig, planMemory, toHfConfigJson } from '@huatuo/llama';
import { expectConfigError } from './config-errors.js';

// Qwen/Qwen2.5-7B-Instruct's config.json (the base of HuatuoGPT-o1-7B).
const QWEN25_7B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 3584,
  initializer_range: 0.02,
  intermediate_size: 18944,
  max_position_embeddings: 32768,
  max_window_layers: 28,
  model_type: 'qwen2',
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.43.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 152064,
};

test('Qwen2.5-7B-Instruct config.json parses as a qwen2 config without a window (use_sliding_window false)', () => {
  const c = parseLlamaConfig(QWEN25_7B, 'config.json');
  assert.equal(c.modelType, 'qwen2');
  assert.equal(c.slidingWindow, null);
  assert.deepEqual([c.hiddenSize, c.headDim, c.numKeyValueHeads, c.ropeTheta, c.rmsNormEps], [3584, 128, 4, 1e6, 1e-6]);
  assert.deepEqual([c.bosTokenId, c.eosTokenIds, c.tieWordEmbeddings], [151643, [151645], false]);
});

test("absent fields take Qwen2Config's defaults: 32 key/value heads, 32768 positions, no window", () => {
  const { num_key_value_heads: _kv, max_position_embeddings: _pos, use_sliding_window: _use, sliding_window: _sw, max_window_layers: _mw, ...rest } = QWEN25_7B;
  const c = parseLlamaConfig({ ...rest, hidden_size: 4096, num_attention_heads: 64 }, 'config.json');
  assert.deepEqual([c.numKeyValueHeads, c.maxPositionEmbeddings, c.slidingWindow], [32, 32768, null]);
  // null: as many as the query heads.
  assert.equal(parseLlamaConfig({ ...rest, num_key_value_heads: null }, 'config.json').numKeyValueHeads, 28);
});

test('use_sliding_window true: a window on every layer is read, on some layers only refused by name', () => {
  const all = parseLlamaConfig({ ...QWEN25_7B, use_sliding_window: true, sliding_window: 4096, max_window_layers: 0 }, 'config.json');
  assert.equal(all.slidingWindow, 4096);
  const none = parseLlamaConfig({ ...QWEN25_7B, use_sliding_window: true, sliding_window: 4096, max_window_layers: 28 }, 'config.json');
  assert.equal(none.slidingWindow, null);
  const types = parseLlamaConfig({ ...QWEN25_7B, use_sliding_window: true, layer_types: Array(28).fill('sliding_attention') }, 'config.json');
  assert.equal(types.slidingWindow, 131072);
  expectConfigError(() => parseLlamaConfig({ ...QWEN25_7B, use_sliding_window: true, max_window_layers: 21 }, 'config.json'), 'use_sliding_window', 'layer 21 of 28', 'set use_sliding_window to false');
  // max_window_layers' default, 28, leaves all 28 layers without a window.
  assert.equal(parseLlamaConfig({ ...QWEN25_7B, use_sliding_window: true, max_window_layers: undefined }, 'config.json').slidingWindow, null);
  expectConfigError(() => parseLlamaConfig({ ...QWEN25_7B, use_sliding_window: 'yes' }, 'config.json'), 'use_sliding_window', 'true or false');
  expectConfigError(() => parseLlamaConfig({ ...QWEN25_7B, layer_types: ['full_attention'] }, 'config.json'), 'layer_types', '28 entries');
});

// num_hidden_layers is checked against the weights only when they load: a config.json claiming 2^32 - 1 layers
// listed a window flag per layer first, which ran the process out of memory instead.
test('the window of a config.json claiming billions of layers is read from max_window_layers without a list per layer', () => {
  const L = 2 ** 32 - 1;
  const huge = { ...QWEN25_7B, num_hidden_layers: L };
  assert.equal(parseLlamaConfig(huge, 'config.json').numHiddenLayers, L);
  assert.equal(parseLlamaConfig(huge, 'config.json').slidingWindow, null);
  assert.equal(parseLlamaConfig({ ...huge, use_sliding_window: true, max_window_layers: 0 }, 'config.json').slidingWindow, 131072);
  assert.equal(parseLlamaConfig({ ...huge, use_sliding_window: true, max_window_layers: L }, 'config.json').slidingWindow, null);
  expectConfigError(() => parseLlamaConfig({ ...huge, use_sliding_window: true, max_window_layers: 5 }, 'config.json'), 'use_sliding_window', `layer 5 of ${L}`);
});

test('a qwen2 config without bos_token_id or eos_token_id is refused (Qwen2Config has no default)', () => {
  const { eos_token_id: _e, ...noEos } = QWEN25_7B;
  expectConfigError(() => parseLlamaConfig(noEos, 'models/qwen/config.json'), 'eos_token_id', 'tokenizer_config.json');
  const { bos_token_id: _b, ...noBos } = QWEN25_7B;
  expectConfigError(() => parseLlamaConfig(noBos, 'models/qwen/config.json'), 'bos_token_id', 'no default');
});

test('toHfConfigJson writes Qwen2ForCausalLM back, and it parses to an equal config', () => {
  for (const json of [QWEN25_7B, { ...QWEN25_7B, use_sliding_window: true, max_window_layers: 0, sliding_window: 64 }]) {
    const c = parseLlamaConfig(json, 'config.json');
    const out = toHfConfigJson(c);
    assert.deepEqual([out['architectures'], out['model_type'], 'attention_bias' in out], [['Qwen2ForCausalLM'], 'qwen2', false]);
    assert.deepEqual(parseLlamaConfig(JSON.parse(JSON.stringify(out)), 'written config.json'), c);
  }
});

test('the expected weights and the memory plan hold the q, k and v biases of every layer, and nothing else', () => {
  const qwen = configFromPreset('tiny', { modelType: 'qwen2' });
  const llama = configFromPreset('tiny');
  const extra = expectedWeights(qwen).filter((s) => !expectedWeights(llama).some((l) => l.name === s.name));
  const kvd = qwen.numKeyValueHeads * qwen.headDim;
  assert.deepEqual(
    extra,
    [0, 1].flatMap((i) => [
      { name: `model.layers.${i}.self_attn.q_proj.bias`, shape: [qwen.numAttentionHeads * qwen.headDim] },
      { name: `model.layers.${i}.self_attn.k_proj.bias`, shape: [kvd] },
      { name: `model.layers.${i}.self_attn.v_proj.bias`, shape: [kvd] },
    ]),
  );
  const opts = { batchSize: 1, seqLen: 8, dtype: 'f16' as const, quantize: 'nf4' as const };
  const biasBytes = qwen.numHiddenLayers * (qwen.numAttentionHeads * qwen.headDim + 2 * kvd) * 2;
  assert.equal(planMemory(qwen, opts).weights - planMemory(llama, opts).weights, biasBytes);
});
