import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  ModelConfigError,
  configFromPreset,
  llamaPresets,
  loadLlamaConfig,
  parseLlamaConfig,
  toHfConfigJson,
  type LlamaConfig,
  type LlamaRopeScaling,
} from '@huatuo/llama';
import { expectConfigError } from './config-errors.js';

const fixtureDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'safetensors', 'huggyllama-llama-7b');

test('the published LLaMA-7B config.json parses to the HF values, with HF defaults for absent fields', async () => {
  const cfg = await loadLlamaConfig(fixtureDir);
  assert.equal(cfg.hiddenSize, 4096);
  assert.equal(cfg.intermediateSize, 11008);
  assert.equal(cfg.numHiddenLayers, 32);
  assert.equal(cfg.numAttentionHeads, 32);
  assert.equal(cfg.numKeyValueHeads, 32); // absent: defaults to num_attention_heads
  assert.equal(cfg.headDim, 4096 / 32);
  assert.equal(cfg.rmsNormEps, 1e-6);
  assert.equal(cfg.ropeTheta, 10000); // absent: HF default
  assert.equal(cfg.vocabSize, 32000);
  assert.equal(cfg.maxPositionEmbeddings, 2048);
  assert.equal(cfg.tieWordEmbeddings, false);
  assert.equal(cfg.bosTokenId, 1);
  assert.equal(cfg.eosTokenId, 2);
  assert.equal(cfg.padTokenId, 0);
  assert.equal(cfg.torchDtype, 'float16');
});

test('the llama-7b preset equals the parsed LLaMA-7B config.json', async () => {
  const json = JSON.parse(await readFile(join(fixtureDir, 'config.json'), 'utf8'));
  assert.deepEqual(llamaPresets['llama-7b'], parseLlamaConfig(json, 'config.json'));
});

test('the tiny preset has the documented small shape and grouped-query attention', () => {
  const t = llamaPresets.tiny;
  assert.deepEqual(
    [t.hiddenSize, t.intermediateSize, t.numHiddenLayers, t.numAttentionHeads, t.numKeyValueHeads, t.vocabSize, t.maxPositionEmbeddings, t.rmsNormEps],
    [64, 172, 2, 4, 2, 32000, 512, 1e-6],
  );
  assert.equal(t.headDim, 16);
});

test('toHfConfigJson writes a complete LlamaForCausalLM config that parses back to the same config', () => {
  for (const preset of Object.values(llamaPresets)) {
    const json = toHfConfigJson(preset);
    assert.deepEqual(json['architectures'], ['LlamaForCausalLM']);
    assert.equal(json['model_type'], 'llama');
    assert.equal(json['hidden_size'], preset.hiddenSize);
    assert.equal(json['num_key_value_heads'], preset.numKeyValueHeads);
    assert.equal(json['torch_dtype'], preset.torchDtype);
    assert.deepEqual(parseLlamaConfig(JSON.parse(JSON.stringify(json)), 'x/config.json'), preset);
  }
});

test('any valid config survives a round trip through config.json text', () => {
  const configArb = fc
    .record({
      kv: fc.integer({ min: 1, max: 8 }),
      groups: fc.integer({ min: 1, max: 4 }),
      headDim: fc.integer({ min: 1, max: 64 }),
      intermediateSize: fc.integer({ min: 1, max: 20000 }),
      numHiddenLayers: fc.integer({ min: 1, max: 80 }),
      vocabSize: fc.integer({ min: 3, max: 200000 }),
      maxPositionEmbeddings: fc.integer({ min: 1, max: 1 << 20 }),
      rmsNormEps: fc.double({ min: 1e-12, max: 1e-2, noNaN: true }),
      ropeTheta: fc.double({ min: 1, max: 1e7, noNaN: true }),
      tie: fc.boolean(),
      eos: fc.array(fc.nat(2), { minLength: 1, maxLength: 3 }),
      pad: fc.option(fc.nat(2), { nil: undefined }),
      dtype: fc.constantFrom('float32' as const, 'float16' as const, 'bfloat16' as const),
      mistral: fc.boolean(),
      window: fc.option(fc.integer({ min: 1, max: 1 << 20 }), { nil: null }),
      ropeScaling: fc.constantFrom<LlamaRopeScaling | null>(
        null,
        { type: 'linear', factor: 2 },
        { type: 'dynamic', factor: 1.5 },
        { type: 'dynamic', factor: 4, originalMaxPositionEmbeddings: 2048 },
        { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
      ),
    })
    .map(
      (r): LlamaConfig => ({
        modelType: r.mistral ? 'mistral' : 'llama',
        hiddenSize: r.kv * r.groups * r.headDim,
        intermediateSize: r.intermediateSize,
        numHiddenLayers: r.numHiddenLayers,
        numAttentionHeads: r.kv * r.groups,
        numKeyValueHeads: r.kv,
        headDim: r.headDim,
        rmsNormEps: r.rmsNormEps,
        ropeTheta: r.ropeTheta,
        ropeScaling: r.ropeScaling,
        vocabSize: r.vocabSize,
        maxPositionEmbeddings: r.maxPositionEmbeddings,
        slidingWindow: r.mistral ? r.window : null,
        tieWordEmbeddings: r.tie,
        bosTokenId: 1,
        eosTokenId: r.eos[0]!,
        eosTokenIds: r.eos,
        padTokenId: r.pad,
        hiddenAct: 'silu',
        initializerRange: 0.02,
        torchDtype: r.dtype,
      }),
    );
  fc.assert(
    fc.property(configArb, (cfg) => {
      const text = JSON.stringify(toHfConfigJson(cfg), null, 2);
      assert.deepEqual(parseLlamaConfig(JSON.parse(text), 'config.json'), cfg);
    }),
  );
});

test('configFromPreset applies overrides and validates the result', () => {
  const cfg = configFromPreset('tiny', { numHiddenLayers: 4, hiddenSize: 128 });
  assert.equal(cfg.numHiddenLayers, 4);
  assert.equal(cfg.headDim, 128 / llamaPresets.tiny.numAttentionHeads);
  assert.equal(cfg.intermediateSize, llamaPresets.tiny.intermediateSize);
  expectConfigError(() => configFromPreset('tiny', { hiddenSize: 66 }), 'num_attention_heads', '66', 'not divisible');
  expectConfigError(() => configFromPreset('nope' as 'tiny'), undefined, 'unknown preset', 'llama-7b');
});

test('malformed configs raise ModelConfigError naming the file, the field, what was expected and what was got', () => {
  const base = toHfConfigJson(llamaPresets.tiny);
  const file = 'models/x/config.json';
  const withField = (k: string, v: unknown) => ({ ...base, [k]: v });
  const without = (k: string) => Object.fromEntries(Object.entries(base).filter(([key]) => key !== k));
  expectConfigError(() => parseLlamaConfig(without('hidden_size'), file), 'hidden_size', file, 'missing');
  expectConfigError(() => parseLlamaConfig(withField('hidden_size', 64.5), file), 'hidden_size', file, 'positive integer', '64.5');
  expectConfigError(() => parseLlamaConfig({ ...without('head_dim'), num_attention_heads: 3 }, file), 'num_attention_heads', 'hidden_size 64', 'not divisible by num_attention_heads 3');
  expectConfigError(() => parseLlamaConfig(withField('num_key_value_heads', 3), file), 'num_key_value_heads', 'num_attention_heads 4', 'num_key_value_heads 3');
  expectConfigError(() => parseLlamaConfig(withField('hidden_act', 'gelu'), file), 'hidden_act', '"silu"', '"gelu"');
  expectConfigError(() => parseLlamaConfig(withField('rms_norm_eps', -1), file), 'rms_norm_eps', 'positive number', '-1');
  expectConfigError(() => parseLlamaConfig(withField('model_type', 'gemma'), file), 'model_type', '"llama", "mistral" or "qwen2"', '"gemma"');
  expectConfigError(() => parseLlamaConfig(withField('eos_token_id', 32000), file), 'eos_token_id', '[0, 32000)', '32000');
  expectConfigError(() => parseLlamaConfig(withField('head_dim', 12.5), file), 'head_dim', 'positive integer', '12.5');
  expectConfigError(() => parseLlamaConfig(withField('rope_scaling', { type: 'longrope', factor: 2 }), file), 'rope_scaling', file, '"longrope" is not supported', '"linear"');
  expectConfigError(() => parseLlamaConfig(withField('tie_word_embeddings', 'no'), file), 'tie_word_embeddings', '"no"');
  expectConfigError(() => parseLlamaConfig([1, 2], file), undefined, file, 'JSON object');
});

test('a field nested too deeply to write back, or too long to show, is refused naming the file and the field, the value cut short', async () => {
  const base = toHfConfigJson(llamaPresets.tiny);
  const file = 'models/x/config.json';
  // JSON.parse reads it; JSON.stringify's stack overflowed on it, a RangeError naming neither file nor field.
  const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
  for (const key of ['hidden_size', 'model_type', 'torch_dtype', 'eos_token_id']) {
    expectConfigError(() => parseLlamaConfig({ ...base, [key]: deep }, file), key, file, 'an array nested too deeply to show');
  }
  for (const ropeScaling of [deep, { rope_type: deep }, { rope_type: 'linear', factor: deep }]) {
    expectConfigError(() => parseLlamaConfig({ ...base, rope_scaling: ropeScaling }, file), 'rope_scaling', file, 'an array nested too deeply to show');
  }
  const long = Array.from({ length: 100_000 }, (_, i) => i);
  assert.throws(
    () => parseLlamaConfig({ ...base, hidden_size: long }, file),
    (e: unknown) => e instanceof ModelConfigError && e.message.includes('got [0,1,2,3,') && e.message.endsWith('...') && e.message.length < 300,
  );
});

test('loadLlamaConfig names the missing config.json and the fix', async () => {
  await assert.rejects(loadLlamaConfig(join(fixtureDir, 'missing')), (err: unknown) => {
    assert.ok(err instanceof ModelConfigError);
    assert.ok(err.message.includes(join(fixtureDir, 'missing', 'config.json')));
    assert.ok(err.message.includes('model folder'));
    return true;
  });
});
