// rope_scaling "yarn" against torch float32 restatements of transformers (scripts/fixtures/make-rope-yarn-fixtures.py):
// config.json's keys parsed, checked and written back; inv_freq, the attention factor and the scaled cos/sin
// (test/fixtures/rope/yarn.json); rope, its backward, ropeCache and the GPU fallback past the table carrying
// the attention factor; and the gqa fixture's weights under YaRN (test/fixtures/rope/yarn-gqa.json): logits
// at positions past the original context, through the KV cache, and LoRA's loss and gradients.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  cat, mul, noGrad, refRope, refRopeAttentionScaling, refRopeBackward, refRopeCache, refRopeInvFreq, refTensor, rope, ropeAttentionScaling,
  ropeCache, ropeInvFreq, slice, sum, tensor, tidy, toArray, type RopeSpec,
} from '@huatuo/tensor';
import {
  KvCache, RotaryFrequencies, llamaPresets, loadAdapter, loadLlama, parseLlamaConfig, peftKey, toHfConfigJson, type LlamaModel,
} from '@huatuo/llama';
import { assertClose, gpu, scoped, seededValues } from '../tensor/helpers.js';
import { checkLogits, fixtureDir, ids2d, readReference } from './fixtures.js';
import { expectConfigError } from './config-errors.js';

const file = 'models/qwen/config.json';
const tiny = toHfConfigJson(llamaPresets.tiny);

interface FrequencyCase {
  name: string;
  D: number;
  theta: number;
  max_position_embeddings: number;
  rope_scaling: Record<string, unknown>;
  positions: number[];
  attention_factor: number;
  inv_freq: number[];
  cos: number[];
  sin: number[];
}

interface ModelCase {
  name: string;
  rope_scaling: Record<string, unknown>;
  positions: number[];
  logits: number[];
  lora: { loss: number; grads: Record<string, number[]> };
}

const readFixture = <T>(name: string) => JSON.parse(readFileSync(new URL(`../fixtures/rope/${name}`, import.meta.url), 'utf8')) as { cases: T[] };
const frequencies = readFixture<FrequencyCase>('yarn.json').cases;
const models = readFixture<ModelCase>('yarn-gqa.json').cases;

/** The RoPE spec a model of head dim D builds from config.json's rope_theta, max_position_embeddings and rope_scaling. */
function specFromConfig(c: Pick<FrequencyCase, 'D' | 'theta' | 'max_position_embeddings' | 'rope_scaling'>): RopeSpec {
  const config = parseLlamaConfig({
    ...tiny, hidden_size: c.D, num_attention_heads: 1, num_key_value_heads: 1,
    rope_theta: c.theta, max_position_embeddings: c.max_position_embeddings, rope_scaling: c.rope_scaling,
  }, file);
  return new RotaryFrequencies(config).forPositions(tensor(Int32Array.from([0])));
}

/** |a - e| in units of e's float32 spacing. */
function ulps(a: number, e: number): number {
  return Math.abs(a - e) / 2 ** (Math.floor(Math.log2(Math.abs(e))) - 23);
}

// torch's float32 pow (SLEEF, within 1 ulp) is not always correctly rounded: where it rounds the other way,
// 1 / theta^(2j / D) and so inv_freq differ by an ulp or two, and the angles at large positions by position times that.
const POW_ROUNDING = new Set(['qwen2.5', 'untruncated']);

test('yarn inverse frequencies and attention factor equal transformers\' float32 values', async () => {
  await gpu();
  for (const c of frequencies) {
    const spec = specFromConfig(c);
    assert.equal(ropeAttentionScaling(spec), c.attention_factor, `${c.name} attention factor`);
    assert.equal(refRopeAttentionScaling(spec), c.attention_factor, `${c.name} reference attention factor`);
    for (const [name, inv] of [['ropeInvFreq', ropeInvFreq(c.D, spec)], ['refRopeInvFreq', refRopeInvFreq(c.D, spec)]] as const) {
      if (!POW_ROUNDING.has(c.name)) assert.deepEqual(Array.from(inv), c.inv_freq, `${name} ${c.name}`);
      else inv.forEach((v, j) => assert.ok(ulps(v, c.inv_freq[j]!) <= 2, `${name} ${c.name} inv_freq[${j}]: ${v} vs torch ${c.inv_freq[j]}`));
    }
  }
});

test('rope with yarn rotates by torch\'s cos and sin times the attention factor', async () => {
  await gpu();
  for (const c of frequencies) {
    const h = c.D / 2;
    const T = c.positions.length;
    // Unit pairs (x[j], x[j + h]) = (1, 0) rotate to (cos, sin), scaled.
    const x = new Float32Array(T * c.D);
    for (let t = 0; t < T; t++) x.fill(1, t * c.D, t * c.D + h);
    await scoped(async () => {
      const y = await rope(tensor(x, [T, c.D]), tensor(Int32Array.from(c.positions)), specFromConfig(c)).toArray();
      const cos = new Float32Array(T * h);
      const sin = new Float32Array(T * h);
      for (let t = 0; t < T; t++) {
        cos.set(y.subarray(t * c.D, t * c.D + h), t * h);
        sin.set(y.subarray(t * c.D + h, (t + 1) * c.D), t * h);
      }
      // torch's float32 cos/sin are within an ulp of the correctly rounded ones, and its angles off by the
      // position times inv_freq's pow rounding (2 ulps).
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < h; j++) {
          const angleUlps = POW_ROUNDING.has(c.name) ? c.positions[t]! * c.inv_freq[j]! * 2 ** -22 : 0;
          const atol = 3e-7 + 1.5 * c.attention_factor * angleUlps;
          for (const [what, got, expected] of [['cos', cos, c.cos], ['sin', sin, c.sin]] as const) {
            const e = expected[t * h + j]!;
            assert.ok(Math.abs(got[t * h + j]! - e) <= atol, `rope ${c.name} ${what} at position ${c.positions[t]}, j ${j}: ${got[t * h + j]} vs torch ${e}`);
          }
        }
      }
    });
  }
});

test('rope\'s backward, ropeCache and positions past the table carry the attention factor', async () => {
  await gpu();
  const SPEC = specFromConfig({ D: 16, theta: 10000, max_position_embeddings: 4096, rope_scaling: { type: 'yarn', factor: 16, original_max_position_embeddings: 256 } });
  const [B, T, H, Hkv, D] = [2, 3, 2, 1, 16];
  const a = ropeAttentionScaling(SPEC);
  assert.ok(a > 1.27, `attention factor ${a}`);
  const pos = Int32Array.from([0, 300, 2047]);
  await scoped(async () => {
    const xv = seededValues(B * H * T * D, 5, 2);
    const wv = seededValues(B * H * T * D, 6, 2);
    const x = tensor(xv, [B, H, T, D], { requiresGrad: true });
    const y = rope(x, tensor(pos), SPEC);
    sum(mul(y, tensor(wv, [B, H, T, D]))).backward();
    assertClose(await y.toArray(), refRope(refTensor(xv, [B, H, T, D]), refTensor(pos, [T]), SPEC).data, { atol: 1e-5, rtol: 1e-4 }, 'rope');
    assertClose(await toArray(x.grad!), refRopeBackward(refTensor(wv, [B, H, T, D]), refTensor(pos, [T]), SPEC).data, { atol: 1e-5, rtol: 1e-4 }, 'rope backward');

    const proj = seededValues(B * T * (H + 2 * Hkv) * D, 7, 2);
    const [nq, nk] = [H * D, Hkv * D];
    const all = tensor(proj, [B, T, nq + 2 * nk]);
    const keys = tensor(new Float32Array(B * Hkv * 4 * D), [B, Hkv, 4, D]);
    const values = tensor(new Float32Array(B * Hkv * 4 * D), [B, Hkv, 4, D]);
    const qo = noGrad(() => ropeCache(slice(all, 2, 0, nq), slice(all, 2, nq, nq + nk), slice(all, 2, nq + nk, nq + 2 * nk), tensor(pos), SPEC, keys, values, 1));
    const cols = (from: number, n: number) => {
      const out = new Float32Array(B * T * n);
      for (let m = 0; m < B * T; m++) out.set(proj.subarray(m * (nq + 2 * nk) + from, m * (nq + 2 * nk) + from + n), m * n);
      return refTensor(out, [B, T, n]);
    };
    const zeros = refTensor(new Float32Array(B * Hkv * 4 * D), [B, Hkv, 4, D]);
    const ref = refRopeCache(cols(0, nq), cols(nq, nk), cols(nq + nk, nk), refTensor(pos, [T]), SPEC, zeros, zeros, 1);
    assertClose(await qo.toArray(), ref.q.data, { atol: 1e-5, rtol: 1e-4 }, 'ropeCache q');
    assertClose(await keys.toArray(), ref.keys.data, { atol: 1e-5, rtol: 1e-4 }, 'ropeCache keys');

    // A slice of a longer tensor has no host copy: positions past the 2048-row table are rotated on the GPU.
    const far = Int32Array.from([3, 2500, 4000, 1]);
    const xs = seededValues(3 * D, 9, 2);
    const onDevice = rope(tensor(xs, [3, D]), slice(tensor(far), 0, 0, 3), SPEC);
    assertClose(await onDevice.toArray(), refRope(refTensor(xs, [3, D]), refTensor(far.slice(0, 3), [3]), SPEC).data, { atol: 2e-3, rtol: 0 }, 'rope past the table');
  });
});

// Qwen2.5-7B-Instruct's config.json with the rope_scaling its model card documents for long inputs.
const QWEN25 = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645, hidden_act: 'silu',
  hidden_size: 3584, initializer_range: 0.02, intermediate_size: 18944, max_position_embeddings: 32768, max_window_layers: 28,
  model_type: 'qwen2', num_attention_heads: 28, num_hidden_layers: 28, num_key_value_heads: 4, rms_norm_eps: 1e-6,
  rope_theta: 1000000.0, sliding_window: 131072, tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.43.1',
  use_cache: true, use_sliding_window: false, vocab_size: 152064,
  rope_scaling: { factor: 4.0, original_max_position_embeddings: 32768, type: 'yarn' },
};

test('Qwen2.5\'s yarn rope_scaling parses, and every yarn key is written back as read', () => {
  const cfg = parseLlamaConfig(QWEN25, file);
  assert.deepEqual(cfg.ropeScaling, { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768 });
  assert.deepEqual(toHfConfigJson(cfg)['rope_scaling'], { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 });
  const all = { rope_type: 'yarn', factor: 40, original_max_position_embeddings: 4096, attention_factor: 1.1, beta_fast: 16, beta_slow: 2, mscale: 1, mscale_all_dim: 0.707, truncate: false };
  for (const raw of [all, { type: 'yarn', factor: 2.5 }, { rope_type: 'yarn', factor: 1, beta_fast: 0, beta_slow: null, truncate: true }]) {
    const parsed = parseLlamaConfig({ ...tiny, rope_scaling: raw }, file);
    const json = toHfConfigJson(parsed)['rope_scaling'] as Record<string, unknown>;
    const expected = Object.fromEntries(Object.entries(raw).filter(([k, v]) => k !== 'type' && v !== null));
    assert.deepEqual(json, { ...expected, rope_type: 'yarn' }, JSON.stringify(raw));
    assert.deepEqual(parseLlamaConfig(JSON.parse(JSON.stringify(toHfConfigJson(parsed))), file), parsed, JSON.stringify(raw));
  }
});

function expectYarnError(raw: Record<string, unknown>, ...fragments: string[]): void {
  expectConfigError(() => parseLlamaConfig({ ...tiny, rope_scaling: { rope_type: 'yarn', ...raw } }, file), 'rope_scaling', file, ...fragments);
}

test('yarn\'s missing factor and bad values raise ModelConfigError naming config.json and rope_scaling', () => {
  expectYarnError({ original_max_position_embeddings: 32768 }, 'requires factor', 'missing factor');
  expectYarnError({ factor: 0.5 }, 'factor must be a number >= 1, got 0.5');
  expectYarnError({ factor: 4, original_max_position_embeddings: 0 }, 'original_max_position_embeddings must be a positive integer');
  expectYarnError({ factor: 4, original_max_position_embeddings: 4096.5 }, 'original_max_position_embeddings must be a positive integer');
  expectYarnError({ factor: 4, attention_factor: 0 }, 'attention_factor must be a number > 0');
  expectYarnError({ factor: 4, beta_fast: '32' }, 'beta_fast must be a number >= 0');
  expectYarnError({ factor: 4, beta_fast: 1, beta_slow: 2 }, 'beta_fast 1 must not be below beta_slow 2');
  expectYarnError({ factor: 4, beta_slow: 40 }, 'beta_fast (default 32) must not be below beta_slow 40');
  expectYarnError({ factor: 4, truncate: 'no' }, 'truncate must be true or false, got "no"');
  expectYarnError({ factor: Math.E, mscale: 1, mscale_all_dim: -10 }, 'mscale 1 and mscale_all_dim -10 give the attention factor');
});

/** The gqa fixture with rope_scaling set in its config.json, loaded from a copy. */
async function withYarn(rope_scaling: Record<string, unknown>, body: (model: LlamaModel, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'yarn-gqa-'));
  try {
    await cp(fixtureDir('gqa'), dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, rope_scaling }));
    const model = await loadLlama(dir);
    try {
      await body(model, dir);
    } finally {
      model.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const c of models) {
  test(`a LLaMA under yarn (${c.name}) gives the reference logits past the original context, with and without the KV cache`, async () => {
    await gpu();
    const ref = readReference('gqa');
    await withYarn(c.rope_scaling, async (model) => {
      const V = model.config.vocabSize;
      const positions = Int32Array.from(c.positions);
      const logits = noGrad(() => tidy(() => model.forward(ids2d(ref.ids), { attentionMask: ids2d(ref.attentionMask), positions: tensor(positions) })));
      await checkLogits(logits, { logits: c.logits, loss: 0 }, `${c.name} logits`);
      logits.dispose();
      const row = ref.ids[0]!;
      const cache = new KvCache(model.config, 1, row.length, 'f32');
      try {
        const steps = noGrad(() => {
          const out = [tidy(() => model.forward(ids2d([row.slice(0, 4)]), { cache, positions: tensor(positions.slice(0, 4)) }))];
          for (let t = 4; t < row.length; t++) out.push(tidy(() => model.forward(ids2d([row.slice(t, t + 1)]), { cache, positions: tensor(positions.slice(t, t + 1)) })));
          return out;
        });
        const cached = tidy(() => cat(steps, 1));
        assertClose(await toArray(cached), c.logits.slice(0, row.length * V), { atol: 1e-4, rtol: 1e-4 }, `${c.name} cached logits`);
        for (const t of [cached, ...steps]) t.dispose();
      } finally {
        cache.dispose();
      }
    });
  });

  test(`LoRA training under yarn (${c.name}) gives the reference loss and gradients`, async () => {
    await gpu();
    const ref = readReference('gqa');
    await withYarn(c.rope_scaling, async (model, dir) => {
      await loadAdapter(model, join(dir, 'adapter'));
      const loss = tidy(() => {
        const l = model.loss(ids2d(ref.ids), ids2d(ref.labels), ids2d(ref.attentionMask));
        l.backward();
        return l;
      });
      assertClose([(await toArray(loss))[0]!], [c.lora.loss], { atol: 1e-4, rtol: 1e-4 }, `${c.name} loss`);
      loss.dispose();
      let checked = 0;
      for (const layer of model.layers) {
        for (const [target, linear] of [['q_proj', layer.qProj], ['v_proj', layer.vProj]] as const) {
          for (const m of ['A', 'B'] as const) {
            const key = peftKey(layer.index, target, m);
            assertClose(await toArray(linear.lora![m].grad!), c.lora.grads[key]!, { atol: 1e-5, rtol: 1e-3 }, `${c.name} gradient of ${key}`);
            checked++;
          }
        }
      }
      assert.equal(checked, Object.keys(c.lora.grads).length);
    });
  });
}
