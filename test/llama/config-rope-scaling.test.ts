// config.json's rope_scaling: Llama 3.1 / 3.2 ("llama3"), linear and dynamic configs in both spellings
// ("rope_type" and the older "type"), transformers' required keys and values, and writing it back.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { llamaPresets, parseLlamaConfig, toHfConfigJson } from '@huatuo/llama';
import { expectConfigError } from './config-errors.js';

const file = 'models/x/config.json';

// Llama 3.2 1B's config.json, as published.
const LLAMA_32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

const tiny = toHfConfigJson(llamaPresets.tiny);
const withScaling = (rope_scaling: unknown) => ({ ...tiny, rope_scaling });

function expectRopeScalingError(raw: unknown, ...fragments: string[]): void {
  expectConfigError(() => parseLlamaConfig(withScaling(raw), file), 'rope_scaling', file, ...fragments);
}

test('Llama 3.2 1B config.json parses with its llama3 rope scaling and writes it back', () => {
  const cfg = parseLlamaConfig(LLAMA_32_1B, file);
  assert.deepEqual(cfg.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.equal(cfg.ropeTheta, 500000);
  const json = toHfConfigJson(cfg);
  assert.deepEqual(json['rope_scaling'], LLAMA_32_1B.rope_scaling);
  assert.deepEqual(parseLlamaConfig(JSON.parse(JSON.stringify(json)), file), cfg);
});

test('linear and dynamic scaling parse from "type" and "rope_type", "rope_type" winning, and round-trip', () => {
  const cases: [unknown, unknown][] = [
    [{ type: 'linear', factor: 4.0 }, { type: 'linear', factor: 4 }],
    [{ rope_type: 'linear', factor: 2.5 }, { type: 'linear', factor: 2.5 }],
    [{ type: 'linear', rope_type: 'dynamic', factor: 2.0 }, { type: 'dynamic', factor: 2 }],
    [{ type: 'dynamic', factor: 2.0, original_max_position_embeddings: 4096 }, { type: 'dynamic', factor: 2, originalMaxPositionEmbeddings: 4096 }],
    [{ rope_type: 'default' }, null],
    [null, null],
  ];
  for (const [raw, expected] of cases) {
    const cfg = parseLlamaConfig(withScaling(raw), file);
    assert.deepEqual(cfg.ropeScaling, expected, JSON.stringify(raw));
    assert.deepEqual(parseLlamaConfig(JSON.parse(JSON.stringify(toHfConfigJson(cfg))), file), cfg, JSON.stringify(raw));
  }
  assert.deepEqual(toHfConfigJson(parseLlamaConfig(withScaling({ rope_type: 'linear', factor: 2.0 }), file))['rope_scaling'], { type: 'linear', factor: 2 });
});

test('unsupported types, missing keys and bad values raise ModelConfigError naming config.json and rope_scaling', () => {
  expectRopeScalingError({ rope_type: 'su', factor: 4.0 }, '"su" is not supported', '"default", "linear", "dynamic", "llama3" and "yarn"');
  expectRopeScalingError({ type: 'longrope', short_factor: [1], long_factor: [1] }, '"longrope" is not supported');
  expectRopeScalingError({ factor: 2.0 }, 'no "rope_type"');
  expectRopeScalingError({ type: 'linear' }, 'requires factor', 'missing factor');
  expectRopeScalingError({ rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0 }, 'missing high_freq_factor, original_max_position_embeddings');
  expectRopeScalingError({ type: 'linear', factor: 0.5 }, 'factor must be a number >= 1, got 0.5');
  expectRopeScalingError({ type: 'dynamic', factor: '2' }, 'factor must be a number >= 1, got "2"');
  expectRopeScalingError({ rope_type: 'llama3', factor: 8.0, low_freq_factor: 4.0, high_freq_factor: 1.0, original_max_position_embeddings: 8192 }, 'high_freq_factor must be a number greater than low_freq_factor 4');
  expectRopeScalingError({ rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192.5 }, 'original_max_position_embeddings must be a positive integer');
  expectRopeScalingError({ type: 'dynamic', factor: 2.0, original_max_position_embeddings: -1 }, 'original_max_position_embeddings must be a positive integer');
  expectRopeScalingError('linear', 'expected null or an object');
});
