// LlamaModel against the PyTorch reference of Hugging Face's LlamaForCausalLM: logits and loss
// of padded batches for three configurations, the KV-cache path, split weights, and the loader's checks.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU, noGrad, tidy, toArray } from '@huatuo/tensor';
import { loadLlama, type LlamaModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { checkLogits, decodedLogits, fixtureDir, fixtureNames, ids2d, logitsOf, readReference } from './fixtures.js';

const tol = { atol: 1e-4, rtol: 1e-4 };

describe('LlamaModel against the PyTorch reference', () => {
  before(async () => {
    await initWebGPU();
  });

  for (const name of fixtureNames) {
    it(`gives the reference logits and loss of a right-padded batch (${name})`, async () => {
      const ref = readReference(name);
      const model = await loadLlama(fixtureDir(name));
      try {
        const { logits, loss } = noGrad(() =>
          tidy(() => {
            const ids = ids2d(ref.ids);
            const mask = ids2d(ref.attentionMask);
            return { logits: model.forward(ids, { attentionMask: mask }), loss: model.loss(ids, ids2d(ref.labels), mask) };
          }),
        );
        await checkLogits(logits, ref, `${name} logits`);
        assertClose([(await toArray(loss))[0]!], [ref.loss], tol, `${name} loss`);
        logits.dispose();
        loss.dispose();
      } finally {
        model.dispose();
      }
    });
  }

  it('gives the same logits through the KV cache (prefill 4, then one token at a time) as the full forward', async () => {
    const ref = readReference('gqa');
    const model = await loadLlama(fixtureDir('gqa'));
    const row = ref.ids[0]!;
    try {
      const cached = await decodedLogits(model, [row], 4);
      assertClose(cached, await logitsOf(model, { ids: [row] }), { atol: 1e-5, rtol: 1e-5 }, 'cached vs full logits');
      assertClose(cached, ref.logits.slice(0, row.length * model.config.vocabSize), tol, 'cached vs reference');
    } finally {
      model.dispose();
    }
  });

  it('splits embedding, lm_head and projections over a small binding limit and gives the same logits', async () => {
    const ref = readReference('gqa');
    // 2 KiB per buffer: the [128, 32] f32 embedding and lm_head (16 KiB) go in 8 parts, the MLP in several.
    const model: LlamaModel = await loadLlama(fixtureDir('gqa'), { maxBindingBytes: 2048 });
    try {
      assert.equal(model.embedParts.length, 8);
      assert.ok(model.layers[0]!.gateProj.parts.length > 1);
      const logits = noGrad(() => tidy(() => model.forward(ids2d(ref.ids), { attentionMask: ids2d(ref.attentionMask) })));
      await checkLogits(logits, ref, 'split gqa logits');
      logits.dispose();
    } finally {
      model.dispose();
    }
  });

  it('refuses a token id past the embedding rows with what to do, whole or split into parts', async () => {
    for (const maxBindingBytes of [undefined, 2048]) {
      const model = await loadLlama(fixtureDir('gqa'), maxBindingBytes === undefined ? {} : { maxBindingBytes });
      try {
        const rows = model.config.vocabSize;
        const forward = (id: number) => noGrad(() => tidy(() => model.forward(ids2d([[1, 2, id]]))));
        assert.throws(() => forward(rows), new RegExp(`token id ${rows} is past the model's ${rows} embedding rows.*pad_token.*Name a token of the vocabulary`));
        assert.throws(() => forward(-1), /token id -1 is negative/);
        forward(rows - 1).dispose();
      } finally {
        model.dispose();
      }
    }
  });

  it('refuses a checkpoint whose tensor shape disagrees with config.json, naming the tensor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llama-bad-'));
    try {
      await cp(fixtureDir('tied-odd'), dir, { recursive: true });
      const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
      cfg.intermediate_size = 60;
      await writeFile(join(dir, 'config.json'), JSON.stringify(cfg));
      await assert.rejects(loadLlama(dir), /model\.layers\.0\.mlp\.gate_proj\.weight.*\[61, 24\].*\[60, 24\]/);
      cfg.intermediate_size = 61;
      cfg.num_hidden_layers = 2;
      await writeFile(join(dir, 'config.json'), JSON.stringify(cfg));
      await assert.rejects(loadLlama(dir), /num_hidden_layers 2, but the weights hold 1 decoder layer \(model\.layers\.0 to model\.layers\.0\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
