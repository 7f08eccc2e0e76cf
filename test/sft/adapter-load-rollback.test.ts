// Loading an adapter is all or nothing: an adapter refused part-way (a tensor missing or of the wrong shape, a tensor
// of no module, a corrupt weights file, a resized vocabulary without its tokenizer or with a tokenizer too large for
// it) leaves the model computing bit for bit as before, its previous adapter (plain or merged) and tokenizer in place,
// with no device memory left behind; a correct adapter then loads. Adapters swapped on one base, one on a resized
// vocabulary and one on the base's, each compute as loaded on a fresh base, with the tokenizer the fresh load gives.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU, noGrad, runtimeStats, synchronize, tensor, tidy, toArray } from '@huatuo/tensor';
import { applyLora, llamaTokenizerDir, loadAdapter, mergeAdapter, removeLora, serializeSafetensors, type LlamaModel } from '@huatuo/llama';
import { attachLora, loadAdapterWithTokenizer, loadBaseModel, removeAdapterWithTokenizer, resolveConfig, type BaseModel } from '@huatuo/sft';
import { QWEN2_TOKENIZER_CONFIG, qwen2TokenizerJson, VOCAB_SIZE as QWEN2_PIECES } from '../llama/qwen2-tokenizer-files.js';
import { SMALL_MODEL, tmp } from './trainer-setup.js';

const EMBED = 'base_model.model.model.embed_tokens.weight';
const HEAD = 'base_model.model.lm_head.weight';
const layerKey = (module: string, m: 'A' | 'B') => `base_model.model.model.layers.0.${module}.lora_${m}.weight`;
const IDS = [1, 450, 4799, 29871, 13, 2];

before(async () => {
  await initWebGPU();
});

const values = (n: number, scale: number, phase: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + phase) * scale);

interface AdapterSpec {
  /** Rows of trained embed_tokens and lm_head copies (none when undefined). */
  rows?: number;
  tokenizer?: boolean;
  useDora?: boolean;
  /** Changes the tensors before they are written. */
  edit?: (tensors: { name: string; shape: number[]; data: Float32Array }[]) => void;
  /** Writes the weights file as these bytes instead. */
  bytes?: (whole: Uint8Array) => Uint8Array;
  phase?: number;
}

/** A PEFT adapter folder for the small test model: LoRA on q_proj and v_proj (B not zero, so it changes the logits). */
function adapterFolder(spec: AdapterSpec = {}): string {
  const dir = tmp('huatuo-adapter-');
  const phase = spec.phase ?? 0;
  const config: Record<string, unknown> = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], use_dora: spec.useDora ?? false };
  if (spec.rows !== undefined) config['modules_to_save'] = ['embed_tokens', 'lm_head'];
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  for (const module of ['self_attn.q_proj', 'self_attn.v_proj']) {
    const out = 32; // q_proj and v_proj alike: 2 heads of 16
    tensors.push({ name: layerKey(module, 'A'), shape: [4, 32], data: values(128, 0.2, phase) });
    tensors.push({ name: layerKey(module, 'B'), shape: [out, 4], data: values(out * 4, 0.2, phase + 1) });
    if (spec.useDora) tensors.push({ name: `base_model.model.model.layers.0.${module}.lora_magnitude_vector`, shape: [out], data: values(out, 0.5, phase).map((v) => 1 + v) });
  }
  if (spec.rows !== undefined) {
    tensors.push({ name: EMBED, shape: [spec.rows, 32], data: values(spec.rows * 32, 0.02, phase) });
    tensors.push({ name: HEAD, shape: [spec.rows, 32], data: values(spec.rows * 32, 0.02, phase + 2) });
  }
  spec.edit?.(tensors);
  const whole = serializeSafetensors(tensors.map((t) => ({ ...t, dtype: 'F32' as const })), { metadata: { format: 'pt' } });
  writeFileSync(join(dir, 'adapter_model.safetensors'), spec.bytes?.(whole) ?? whole);
  if (spec.tokenizer) for (const f of ['tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(llamaTokenizerDir(), f), join(dir, f));
  return dir;
}

async function logitsOf(model: LlamaModel): Promise<Float32Array> {
  const t = noGrad(() => tidy(() => model.forward(tensor(Int32Array.from(IDS), [1, IDS.length]))));
  const out = (await toArray(t)) as Float32Array;
  t.dispose();
  return out;
}

async function bytesInUse(): Promise<number> {
  await synchronize();
  return runtimeStats().bytesInUse;
}

/** Adapters refused part-way, each with the error it is refused with. */
const refused: [string, AdapterSpec, RegExp][] = [
  ['a tensor missing', { edit: (ts) => void ts.splice(ts.findIndex((t) => t.name === layerKey('self_attn.v_proj', 'B')), 1) }, /v_proj\.lora_B\.weight" is missing/],
  ['a tensor of the wrong shape', { edit: (ts) => Object.assign(ts.find((t) => t.name === layerKey('self_attn.v_proj', 'A'))!, { shape: [4, 16], data: values(64, 0.1, 0) }) }, /v_proj\.lora_A\.weight" has shape \[4, 16\], expected \[4, 32\]/],
  ['a tensor of no module', { edit: (ts) => void ts.push({ name: layerKey('self_attn.k_proj', 'A'), shape: [4, 32], data: values(128, 0.1, 0) }) }, /k_proj\.lora_A\.weight" does not belong/],
  ['a DoRA magnitude of the wrong size', { useDora: true, edit: (ts) => Object.assign(ts.find((t) => t.name.endsWith('v_proj.lora_magnitude_vector'))!, { shape: [16], data: values(16, 1, 0) }) }, /magnitude_vector" has shape \[16\], expected \[32\]/],
  ['trained copies of another width after the layers checked', { rows: 32008, tokenizer: true, edit: (ts) => Object.assign(ts.find((t) => t.name === HEAD)!, { shape: [32008, 16], data: values(32008 * 16, 0.02, 0) }) }, /lm_head\.weight" has shape \[32008, 16\]/],
  ['a corrupt weights file', { bytes: (whole) => whole.slice(0, whole.length - 100) }, /adapter_model\.safetensors/],
  ['a resized vocabulary without its tokenizer', { rows: 32008 }, /--adapter: .*vocabulary of 32008 pieces \(the base has 32000\), but holds no tokenizer/],
  ['a tokenizer with more pieces than the vocabulary', { rows: 31990, tokenizer: true }, /--adapter: the tokenizer in .* has 32000 pieces, more than the 31990 rows/],
];

async function checkRefusalsLeaveModel(base: BaseModel): Promise<void> {
  const before = await logitsOf(base.model);
  const { tokenizer, model } = base;
  const config = model.loraConfig;
  const memory = await bytesInUse();
  for (const [what, spec, error] of refused) {
    await assert.rejects(loadAdapterWithTokenizer(base, adapterFolder(spec)), error, what);
    assert.deepEqual(await logitsOf(model), before, `after ${what}, the model computes bit for bit as before`);
    assert.equal(model.loraConfig, config, `after ${what}, the previous adapter's config`);
    assert.equal(base.tokenizer, tokenizer, `after ${what}, the previous tokenizer`);
    assert.equal(model.config.vocabSize, 32000, `after ${what}, the previous vocabulary`);
    assert.equal(await bytesInUse(), memory, `after ${what}, no device memory of the refused adapter is held`);
  }
  // The same refusals through loadAdapter, which knows no tokenizer.
  await assert.rejects(loadAdapter(model, adapterFolder(refused[0]![1])), refused[0]![2]);
  assert.deepEqual(await logitsOf(model), before, 'after loadAdapter refused a tensor missing');
}

test('an adapter refused part-way leaves the model with no adapter computing as before, and a correct adapter then loads', async () => {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  try {
    const plain = await logitsOf(base.model);
    await checkRefusalsLeaveModel(base);
    assert.equal(base.model.loraConfig, null);
    const dir = adapterFolder({ rows: 32008, tokenizer: true });
    assert.equal(await loadAdapterWithTokenizer(base, dir), dir);
    assert.equal(base.model.config.vocabSize, 32008);
    assert.notDeepEqual((await logitsOf(base.model)).slice(0, plain.length), plain, 'the loaded adapter changes the logits');
  } finally {
    base.model.dispose();
  }
});

test('an adapter refused part-way leaves the previous adapter attached (plain, DoRA or merged) computing as before, and a correct one then replaces it', async () => {
  for (const [what, previous, merge] of [['plain', {}, false], ['DoRA', { useDora: true }, false], ['merged', {}, true]] as const) {
    const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
    try {
      assert.equal(await loadAdapterWithTokenizer(base, adapterFolder({ ...previous, phase: 3 })), null);
      if (merge) mergeAdapter(base.model);
      const withPrevious = await logitsOf(base.model);
      await checkRefusalsLeaveModel(base);
      assert.equal(base.model.loraConfig?.useDora ?? false, 'useDora' in previous, `${what}: the previous adapter is still attached`);
      await loadAdapter(base.model, adapterFolder({ phase: 5 }));
      const replaced = await logitsOf(base.model);
      assert.notDeepEqual(replaced, withPrevious, `${what}: the new adapter replaces the previous one`);
      await loadAdapter(base.model, adapterFolder({ ...previous, phase: 3 }));
      if (!merge) assert.deepEqual(await logitsOf(base.model), withPrevious, `${what}: the previous adapter loaded again computes as before`);
    } finally {
      base.model.dispose();
    }
  }
});

test('adapters swapped on one base (a resized vocabulary, the base\'s, resized again, removed) compute bit for bit as each loaded fresh, with the base\'s tokenizer back where they keep its vocabulary', async () => {
  const resized = adapterFolder({ rows: 32008, tokenizer: true, phase: 1 });
  const resizedOther = adapterFolder({ rows: 32008, tokenizer: true, phase: 2 });
  const baseVocabCopies = adapterFolder({ rows: 32000, phase: 4 });
  const plain = adapterFolder({ phase: 6 });
  /** The logits, vocabulary and tokenizer folder of `dir` loaded on a fresh base. */
  const fresh = async (dir: string | null) => {
    const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
    try {
      const tokenizerDir = dir === null ? null : await loadAdapterWithTokenizer(base, dir);
      return { logits: await logitsOf(base.model), vocabSize: base.model.config.vocabSize, tokenizerDir, pieces: base.tokenizer.vocabSize };
    } finally {
      base.model.dispose();
    }
  };
  const expected = new Map<string | null, Awaited<ReturnType<typeof fresh>>>();
  for (const dir of [null, resized, resizedOther, baseVocabCopies, plain]) expected.set(dir, await fresh(dir));
  assert.equal(expected.get(resized)!.tokenizerDir, resized);
  assert.equal(expected.get(baseVocabCopies)!.tokenizerDir, null);

  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  const baseTokenizer = base.tokenizer;
  const memory = await bytesInUse();
  try {
    const order = [resized, baseVocabCopies, resized, plain, resizedOther, resized, baseVocabCopies, resizedOther];
    for (const [i, dir] of order.entries()) {
      const after = i === 0 ? 'on the base' : `after ${order[i - 1] === resized || order[i - 1] === resizedOther ? 'a resized adapter' : 'an adapter on the base vocabulary'}`;
      const want = expected.get(dir)!;
      const previousTokenizer = base.tokenizer;
      const tokenizerDir = await loadAdapterWithTokenizer(base, dir);
      assert.equal(tokenizerDir, want.tokenizerDir, `${dir} ${after}: the folder whose tokenizer is used`);
      assert.equal(base.model.config.vocabSize, want.vocabSize, `${dir} ${after}: the vocabulary`);
      assert.deepEqual(await logitsOf(base.model), want.logits, `${dir} ${after}: computes bit for bit as loaded fresh`);
      if (tokenizerDir === null) assert.equal(base.tokenizer, baseTokenizer, `${dir} ${after}: the base's own tokenizer is back`);
      else assert.ok(base.tokenizer !== baseTokenizer && base.tokenizer !== previousTokenizer, `${dir} ${after}: the tokenizer read from the adapter folder`);
      assert.equal(base.tokenizer.vocabSize, want.pieces);
    }
    removeAdapterWithTokenizer(base);
    assert.equal(base.model.loraConfig, null);
    assert.equal(base.model.config.vocabSize, 32000, 'removed: the base vocabulary');
    assert.equal(base.tokenizer, baseTokenizer, 'removed: the base tokenizer');
    assert.deepEqual(await logitsOf(base.model), expected.get(null)!.logits, 'removed: the base computes as before any adapter');
    assert.equal(await bytesInUse(), memory, 'removed: no device memory of the adapters is held');
  } finally {
    base.model.dispose();
  }
});

test("an adapter's own tokenizer goes with it: removed by removeLora, or replaced (applyLora, training's attachLora, loadAdapter), the base's vocabulary and tokenizer are back", async () => {
  // 300 pieces with a 270-piece tokenizer: the base's 32000-piece tokenizer would encode past the adapter's rows, and back.
  const resized = adapterFolder({ rows: 300 });
  writeFileSync(join(resized, 'tokenizer.json'), JSON.stringify(qwen2TokenizerJson()));
  writeFileSync(join(resized, 'tokenizer_config.json'), JSON.stringify(QWEN2_TOKENIZER_CONFIG));
  const plain = adapterFolder({ phase: 2 });
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  try {
    const own = base.tokenizer;
    const text = 'Headache: 头痛怎么办？';
    const replacements: [string, () => unknown][] = [
      ['removeLora', () => removeLora(base.model)],
      ['applyLora', () => applyLora(base.model, { r: 4, targetModules: ['q_proj'] })],
      ["attachLora (a training run's fresh adapter)", () => attachLora(base, resolveConfig({ '--lora-r': '4' }))],
      ['loadAdapter of an adapter on the base vocabulary', () => loadAdapter(base.model, plain)],
    ];
    for (const [what, replace] of replacements) {
      assert.equal(await loadAdapterWithTokenizer(base, resized), resized);
      assert.equal(base.tokenizer.vocabSize, QWEN2_PIECES, `before ${what}: the adapter's tokenizer`);
      await replace();
      assert.equal(base.model.config.vocabSize, 32000, `${what}: the base's vocabulary`);
      assert.equal(base.tokenizer, own, `${what}: the base's tokenizer`);
      assert.equal(base.model.savedModules.tokenizer, null, `${what}: the model holds no adapter tokenizer`);
      assert.deepEqual(base.tokenizer.encode(text), own.encode(text));
    }
  } finally {
    base.model.dispose();
  }
});
