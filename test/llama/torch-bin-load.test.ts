// Model folders and PEFT adapters saved as PyTorch .bin load exactly as their safetensors twins
// (fixtures of scripts/fixtures/make-torch-bin-fixtures.py, made from test/fixtures/llama).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU, noGrad, tensor, tidy } from '@huatuo/tensor';
import {
  AdapterError,
  bytesSource,
  loadAdapter,
  loadAdapterFromFiles,
  loadLlama,
  openCheckpoint,
  openCheckpointFromFiles,
  type Checkpoint,
  type LoadProgress,
} from '@huatuo/llama';
import { checkLogits, fixtureDir, logitsOf, readReference } from './fixtures.js';

const binDir = fileURLToPath(new URL('../fixtures/torch-bin/', import.meta.url));

async function tensorsOf(ckpt: Checkpoint): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for await (const { info, data } of ckpt.iterateAs('f32')) out.set(info.name, Array.from(data));
  await ckpt.close();
  return out;
}

describe('PyTorch .bin checkpoints', () => {
  before(async () => {
    await initWebGPU();
  });

  it('a pytorch_model.bin folder holds the same tensors as model.safetensors, and reports progress', async () => {
    const want = await tensorsOf(await openCheckpoint(fixtureDir('gqa')));
    const ckpt = await openCheckpoint(join(binDir, 'gqa-model'));
    const seen: LoadProgress[] = [];
    const got = new Map<string, number[]>();
    for await (const { info, data } of ckpt.iterateAs('f32', { onProgress: (p) => seen.push(p) })) got.set(info.name, Array.from(data));
    await ckpt.close();
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [name, values] of want) assert.deepEqual(got.get(name), values, name);
    assert.equal(seen.length, want.size);
    assert.equal(seen.at(-1)!.bytesRead, seen.at(-1)!.totalBytes);
  });

  it('a sharded pytorch_model.bin.index.json folder holds the same tensors, lm_head sharing the embedding', async () => {
    const want = await tensorsOf(await openCheckpoint(fixtureDir('tied-odd')));
    const got = await tensorsOf(await openCheckpoint(join(binDir, 'tied-odd-sharded')));
    assert.deepEqual([...got.keys()].sort(), [...want.keys(), 'lm_head.weight'].sort());
    for (const [name, values] of want) assert.deepEqual(got.get(name), values, name);
    assert.deepEqual(got.get('lm_head.weight'), want.get('model.embed_tokens.weight'));
  });

  it('picked browser Files of a sharded .bin checkpoint open as the folder does', async () => {
    const folder = join(binDir, 'tied-odd-sharded');
    const names = ['pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'config.json'];
    const files = await Promise.all(names.map(async (n) => new File([await readFile(join(folder, n))], n)));
    const got = await tensorsOf(await openCheckpointFromFiles(files));
    assert.deepEqual(got, await tensorsOf(await openCheckpoint(folder)));
  });

  for (const [name, folder] of [['gqa', 'gqa-model'], ['tied-odd', 'tied-odd-sharded']] as const) {
    it(`loadLlama of the .bin folder gives the safetensors model's logits exactly (${name})`, async () => {
      const ref = readReference(name);
      const fromBin = await loadLlama(join(binDir, folder));
      const fromSt = await loadLlama(fixtureDir(name));
      try {
        assert.deepEqual(await logitsOf(fromBin, { ids: ref.ids }), await logitsOf(fromSt, { ids: ref.ids }));
        const logits = noGrad(() => tidy(() => fromBin.forward(tensor(Int32Array.from(ref.ids.flat()), [ref.ids.length, ref.ids[0]!.length]), { attentionMask: tensor(Int32Array.from(ref.attentionMask.flat()), [ref.ids.length, ref.ids[0]!.length]) })));
        await checkLogits(logits, ref, `${name} from .bin`);
        logits.dispose();
      } finally {
        fromBin.dispose();
        fromSt.dispose();
      }
    });
  }

  it('an adapter folder with adapter_model.bin (folder and bytes) gives the safetensors adapter\'s outputs exactly', async () => {
    const ref = readReference('gqa');
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, join(fixtureDir('gqa'), 'adapter'));
      const want = await logitsOf(model, { ids: ref.ids });
      await loadAdapter(model, join(binDir, 'gqa-adapter'));
      assert.deepEqual(await logitsOf(model, { ids: ref.ids }), want);
      const configText = await readFile(join(binDir, 'gqa-adapter', 'adapter_config.json'), 'utf8');
      const weights = new Uint8Array(await readFile(join(binDir, 'gqa-adapter', 'adapter_model.bin')));
      await loadAdapterFromFiles(model, configText, 'adapter_config.json', bytesSource('adapter_model.bin', weights));
      assert.deepEqual(await logitsOf(model, { ids: ref.ids }), want);
    } finally {
      model.dispose();
    }
  });

  it('an adapter folder without weights names both file names', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'adapter-'));
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await writeFile(join(dir, 'adapter_config.json'), await readFile(join(binDir, 'gqa-adapter', 'adapter_config.json')));
      await assert.rejects(loadAdapter(model, dir), (err: unknown) => err instanceof AdapterError && /adapter_model\.safetensors: file not found, nor adapter_model\.bin/.test(err.message));
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
