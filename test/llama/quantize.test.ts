// Quantized bases: loadLlama({ quantize }) stores exactly the decoder projections quantized (the model
// then gives the logits, loss and LoRA gradients of the same model with host-dequantized weights), the
// base stays frozen, and a merged model saved from a quantized base is an f16 checkpoint of W_deq + B A.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dequantizeHost, f16BitsToF32, initWebGPU, keep, noGrad, quantizeHost, refQuantizeInt8, refQuantizeNf4, tensor, tidy, toArray } from '@huatuo/tensor';
import { loadAdapter, loadLlama, mergeAdapter, openCheckpoint, readLinearWeight, saveMergedModel, serializeSafetensors, type LlamaModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { fixtureDir, ids2d, logitsOf, readReference } from './fixtures.js';


/** The unquantized fixture with every decoder projection replaced by its quantize-dequantize round trip. */
async function dequantizedReference(format: 'int8' | 'nf4'): Promise<LlamaModel> {
  const model = await loadLlama(fixtureDir('gqa'));
  for (const l of model.linears()) {
    const w = dequantizeHost(quantizeHost(await readLinearWeight(l), l.outFeatures, l.inFeatures, format));
    for (const p of l.parts) p.dispose();
    l.parts = [keep(tensor(w, [l.outFeatures, l.inFeatures]))];
  }
  return model;
}

/** Logits, loss and LoRA gradients (by PEFT module order) of the fixture batch with its adapter. */
async function run(model: LlamaModel): Promise<{ logits: Float32Array; loss: number; grads: Float32Array[] }> {
  const ref = readReference('gqa');
  await loadAdapter(model, join(fixtureDir('gqa'), 'adapter'));
  const { logits, loss } = tidy(() => {
    const mask = ids2d(ref.attentionMask);
    const loss = model.loss(ids2d(ref.ids), ids2d(ref.labels), mask);
    loss.backward();
    return { loss, logits: noGrad(() => model.forward(ids2d(ref.ids), { attentionMask: mask })) };
  });
  const out = { logits: (await toArray(logits)) as Float32Array, loss: (await toArray(loss))[0]!, grads: await Promise.all(model.loraParameters().map(async (p) => (await toArray(p.grad!)) as Float32Array)) };
  logits.dispose();
  loss.dispose();
  return out;
}

describe('quantized base models', () => {
  before(async () => {
    await initWebGPU();
  });

  for (const format of ['int8', 'nf4'] as const) {
    it(`loadLlama quantize ${format}: the decoder projections only, with the logits, loss and LoRA gradients of the dequantized model`, async () => {
      const model = await loadLlama(fixtureDir('gqa'), { quantize: format });
      const reference = await dequantizedReference(format);
      try {
        assert.equal(model.quantization, format);
        for (const l of model.linears()) {
          assert.equal(l.parts.length, 0, `${l.name} keeps no unquantized copy`);
          assert.equal(l.quantized?.format, format);
        }
        assert.equal(model.lmHead.quantized, null, 'lm_head stays unquantized');
        const got = await run(model);
        const want = await run(reference);
        const tol = { atol: 1e-5, rtol: 1e-4 };
        assertClose(got.logits, want.logits, tol, `${format} logits`);
        assertClose([got.loss], [want.loss], tol, `${format} loss`);
        got.grads.forEach((g, i) => assertClose(g, want.grads[i]!, { atol: 1e-6, rtol: 1e-3 }, `${format} LoRA gradient ${i}`));
      } finally {
        model.dispose();
        reference.dispose();
      }
    });
  }

  it('an F16 checkpoint loads quantized from its f16 bit patterns to the reference bytes of their f32 values', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llama-quant-f16-'));
    try {
      const ckpt = await openCheckpoint(fixtureDir('gqa'));
      const tensors = [];
      for await (const { info, data } of ckpt.iterateAs('f16')) tensors.push({ name: info.name, dtype: 'F16' as const, shape: info.shape, data });
      await ckpt.close();
      await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
      await copyFile(join(fixtureDir('gqa'), 'config.json'), join(dir, 'config.json'));
      const bits = new Map(tensors.map((t) => [t.name, t.data]));
      for (const format of ['int8', 'nf4'] as const) {
        const model = await loadLlama(dir, { quantize: format });
        try {
          for (const l of model.linears()) {
            const got = await l.quantized!.download();
            const values = f16BitsToF32(bits.get(`${l.name}.weight`)!);
            const want = format === 'int8' ? refQuantizeInt8(values, l.outFeatures, l.inFeatures) : refQuantizeNf4(values, l.outFeatures, l.inFeatures);
            for (const [key, field] of Object.entries(want)) {
              const mine = (got as unknown as Record<string, unknown>)[key];
              if (ArrayBuffer.isView(field)) assert.deepEqual(mine, field, `${format} ${l.name}: ${key}`);
              else assert.ok(Object.is(mine, field), `${format} ${l.name}: ${key} is ${String(mine)}, the reference gives ${String(field)}`);
            }
          }
        } finally {
          model.dispose();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('mergeAdapter leaves quantized projections with their adapter running; saveMergedModel writes f16 weights of W_deq + scaling B A', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llama-quant-merge-'));
    const model = await loadLlama(fixtureDir('gqa'), { quantize: 'nf4' });
    const reference = await dequantizedReference('nf4');
    try {
      const ref = readReference('gqa');
      await loadAdapter(model, join(fixtureDir('gqa'), 'adapter'));
      await loadAdapter(reference, join(fixtureDir('gqa'), 'adapter'));
      const before = await logitsOf(model, { ids: ref.ids });
      mergeAdapter(model);
      assert.ok(model.linears().every((l) => !l.merged), 'quantized projections are not merged in place');
      assertClose(await logitsOf(model, { ids: ref.ids }), before, { atol: 0, rtol: 0 }, 'logits after mergeAdapter');
      await saveMergedModel(model, dir);
      const ckpt = await openCheckpoint(dir);
      assert.deepEqual([...new Set(ckpt.tensors.map((t) => t.dtype))], ['F16']);
      await ckpt.close();
      mergeAdapter(reference);
      const merged = await loadLlama(dir);
      try {
        // Each merged weight is W_deq + scaling B A rounded once to f16 (relative error at most 2^-11).
        const want = reference.linears();
        for (const [i, l] of merged.linears().entries()) {
          assertClose(await readLinearWeight(l), await readLinearWeight(want[i]!), { atol: 1e-7, rtol: 2 ** -11 }, `merged ${l.name}`);
        }
      } finally {
        merged.dispose();
      }
    } finally {
      model.dispose();
      reference.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
