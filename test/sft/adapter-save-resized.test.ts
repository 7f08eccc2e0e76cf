// Saving an adapter that brings its own vocabulary writes the tokenizer it was loaded with, byte for byte, so the saved
// folder (saveAdapter's, or saveMergedModel's merged model) loads back with the same tokenizer: the same token ids and
// the same logits. An adapter on the base's vocabulary writes no tokenizer.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU, noGrad, tensor, tidy, toArray } from '@huatuo/tensor';
import { applyLora, generate, llamaTokenizerDir, saveAdapter, saveMergedModel, serializeAdapter, type LlamaModel } from '@huatuo/llama';
import { loadAdapterWithTokenizer, loadBaseModel, type BaseModel } from '@huatuo/sft';
import { RESIZED_PIECES, RESIZED_TEXT, RESIZED_TOKENIZER_FILES, resizedAdapterFolder } from './resized-adapter-folder.js';
import { SMALL_MODEL, tmp } from './trainer-setup.js';

before(async () => {
  await initWebGPU();
});

async function logitsOf(model: LlamaModel, ids: readonly number[]): Promise<Float32Array> {
  const t = noGrad(() => tidy(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length]))));
  const out = (await toArray(t)) as Float32Array;
  t.dispose();
  return out;
}

/** The small demo base with the adapter in `dir` loaded with its tokenizer; what it computes on RESIZED_TEXT. */
async function adapted(dir: string): Promise<{ base: BaseModel; ids: number[]; logits: Float32Array; answer: string }> {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  assert.equal(await loadAdapterWithTokenizer(base, dir), dir, `${dir} loads with its own tokenizer`);
  const ids = base.tokenizer.encode(RESIZED_TEXT);
  const [g] = await generate(base.model, base.tokenizer, RESIZED_TEXT, { maxNewTokens: 4 });
  return { base, ids, logits: await logitsOf(base.model, ids), answer: g!.text };
}

function assertSameTokenizerFiles(dir: string, from: string): void {
  for (const f of RESIZED_TOKENIZER_FILES) assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(from, f)), `${f} in ${dir}, byte for byte`);
  assert.ok(!readdirSync(dir).includes('tokenizer.json'), 'no tokenizer.json the adapter did not come with');
}

test('a resized adapter saved with saveAdapter writes its tokenizer files byte for byte and loads back with the same ids, logits and answer', async () => {
  const source = resizedAdapterFolder();
  const first = await adapted(source);
  let saved: string;
  try {
    assert.ok(first.ids.includes(32005), `the added token <med_5> is one id with the adapter's tokenizer: ${first.ids}`);
    assert.notDeepEqual(first.ids, first.base.baseTokenizer.encode(RESIZED_TEXT), "the base's tokenizer gives other ids");
    saved = join(tmp(), 'saved');
    await saveAdapter(first.base.model, saved);
    assertSameTokenizerFiles(saved, source);
    assert.deepEqual([...(await serializeAdapter(first.base.model)).tokenizer.keys()].sort(), [...RESIZED_TOKENIZER_FILES].sort(), "serializeAdapter's tokenizer files");
  } finally {
    first.base.model.dispose();
  }
  const again = await adapted(saved);
  try {
    assert.equal(again.base.model.config.vocabSize, RESIZED_PIECES);
    assert.deepEqual(again.ids, first.ids, 'the same token ids');
    assert.deepEqual(again.logits, first.logits, 'the same logits, bit for bit');
    assert.equal(again.answer, first.answer, 'the same greedy answer');
    // Saved again into the folder it was loaded from: the files are rewritten from memory, unchanged.
    await saveAdapter(again.base.model, saved);
    assertSameTokenizerFiles(saved, source);
  } finally {
    again.base.model.dispose();
  }
});

test("an adapter on the base's vocabulary writes no tokenizer, also after a resized adapter was replaced by it", async () => {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  try {
    const resized = resizedAdapterFolder();
    for (const modulesToSave of [null, ['embed_tokens', 'lm_head']]) {
      assert.equal(await loadAdapterWithTokenizer(base, resized), resized);
      applyLora(base.model, { r: 4, alpha: 8, targetModules: ['q_proj'], modulesToSave });
      const dir = join(tmp(), 'plain');
      await saveAdapter(base.model, dir);
      assert.deepEqual(readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.safetensors'], `modules_to_save ${JSON.stringify(modulesToSave)}`);
      assert.equal((await serializeAdapter(base.model)).tokenizer.size, 0);
      // Loaded again, as a folder on the base's vocabulary is: the base's tokenizer.
      assert.equal(await loadAdapterWithTokenizer(base, dir), null);
      assert.equal(base.tokenizer, base.baseTokenizer);
    }
  } finally {
    base.model.dispose();
  }
});

test("saveMergedModel of a resized adapter writes the adapter's tokenizer, not tokenizerDir's, and the merged folder loads with the same ids and logits", async () => {
  const source = resizedAdapterFolder();
  const first = await adapted(source);
  const merged = join(tmp(), 'merged');
  try {
    await saveMergedModel(first.base.model, merged, { tokenizerDir: llamaTokenizerDir() });
  } finally {
    first.base.model.dispose();
  }
  assertSameTokenizerFiles(merged, source);
  const model = await loadBaseModel(merged, undefined, { dtype: 'f32' });
  try {
    assert.equal(model.model.config.vocabSize, RESIZED_PIECES);
    assert.deepEqual(model.tokenizer.encode(RESIZED_TEXT), first.ids, 'the same token ids');
    const logits = await logitsOf(model.model, first.ids);
    let worst = 0;
    for (let i = 0; i < logits.length; i++) worst = Math.max(worst, Math.abs(logits[i]! - first.logits[i]!));
    assert.ok(worst <= 1e-4, `merged logits within ${worst} of the adapted model's`);
  } finally {
    model.model.dispose();
  }
});
