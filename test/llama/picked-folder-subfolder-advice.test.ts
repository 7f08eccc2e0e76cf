// A folder picked one level too high (the model or adapter in a subfolder, as in a Hugging Face cache's snapshots or a
// training run's checkpoints): its subfolders are not read, and the error names the subfolders to pick instead.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaTokenizerDir, loadTokenizer, openCheckpointFromFiles, pickedSubfoldersHolding } from '@huatuo/llama';
import { baseModelOf } from '@huatuo/sft';
import { uploadAdapter } from '../../apps/web/src/adapter-io.js';
import { loadFolderModel } from '../../apps/web/src/base-model.js';
import { saveVersion } from './folder-save-versions.js';

before(async () => {
  await initWebGPU();
});

/** Files as a browser gives a picked folder: each with its path from the picked folder's name in webkitRelativePath. */
function pick(paths: readonly string[]): File[] {
  return paths.map((path) => Object.defineProperty(new File(['{}'], path.slice(path.lastIndexOf('/') + 1)), 'webkitRelativePath', { value: path }));
}

const smallModel = () =>
  createRandomLlama(configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 }), { seed: 9 });

const lora = { r: 8, targetModules: ['q_proj' as const, 'v_proj' as const] };

test('the base model picker names the subfolder holding config.json, never the staging folder', async () => {
  const files = pick(['llama-7b/README.md', 'llama-7b/.save-in-progress/config.json', 'llama-7b/hf/config.json', 'llama-7b/hf/model.safetensors', 'llama-7b/hf/tokenizer.model']);
  await assert.rejects(loadFolderModel(files, {}, 64, lora, 1 << 30, () => {}), (err: Error) => {
    assert.match(err.message, /^llama-7b: no config\.json among its own files \(its subfolders' are not read\).*; config\.json is in llama-7b\/hf: pick that folder$/);
    return true;
  });
});

test('a Hugging Face cache picked at its model folder names its snapshots, at most three', async () => {
  const snapshots = ['a1', 'b2', 'c3', 'd4'].map((hash) => `models--org--name/snapshots/${hash}`);
  const files = pick(['models--org--name/refs/main', 'models--org--name/blobs/0f3a', ...snapshots.map((s) => `${s}/config.json`)]);
  await assert.rejects(loadFolderModel(files, {}, 64, lora, 1 << 30, () => {}), {
    message: `models--org--name: no config.json among its own files (its subfolders' are not read); config.json is in ${snapshots.slice(0, 3).join(', ')} (and 1 more): pick one of those folders`,
  });
  assert.deepEqual(pickedSubfoldersHolding(files, 'config.json', (n) => n === 'config.json').folders, snapshots);
});

test('openCheckpointFromFiles names the subfolder holding a checkpoint, not one holding an adapter or training_args.bin', async () => {
  const files = pick([
    'llama-7b/config.json',
    'llama-7b/original/consolidated.00.pth',
    'llama-7b/.save-in-progress/model.safetensors',
    'llama-7b/lora/adapter_model.safetensors',
    'llama-7b/run/training_args.bin',
    'llama-7b/hf/model-00001-of-00002.safetensors',
    'llama-7b/hf/model.safetensors.index.json',
  ]);
  await assert.rejects(openCheckpointFromFiles(files), (err: Error) => {
    assert.match(err.message, /no model\.safetensors\.index\.json, \.safetensors or \.bin file among the picked folder's own files \(its subfolders' are not read\); a checkpoint \(\.safetensors or \.bin\) is in llama-7b\/hf: pick that folder$/);
    return true;
  });
});

test('the adapter picker names the subfolders holding adapter_config.json where several do and the picked folder not', async () => {
  const files = pick([
    'out/trainer_state.json',
    'out/.save-in-progress/adapter_config.json',
    'out/checkpoint-200/adapter_config.json',
    'out/checkpoint-200/adapter_model.safetensors',
    'out/checkpoint-100/adapter_config.json',
    'out/checkpoint-100/adapter_model.safetensors',
  ]);
  const model = smallModel();
  try {
    const base = baseModelOf(model, await loadTokenizer(llamaTokenizerDir()), 'base', false);
    await assert.rejects(uploadAdapter(base, files, {}), {
      message: "no adapter_config.json among the picked folder's own files, and several of its subfolders hold one; adapter_config.json is in out/checkpoint-100, out/checkpoint-200: pick one of those folders",
    });
  } finally {
    model.dispose();
  }
});

test('a picked folder holding only a subfolder is not read as that subfolder: the error names it', async () => {
  const files = pick(['llama-7b/hf/config.json', 'llama-7b/hf/model.safetensors', 'llama-7b/hf/tokenizer.model']);
  await assert.rejects(loadFolderModel(files, {}, 64, lora, 1 << 30, () => {}), {
    message: "llama-7b: no config.json among its own files (its subfolders' are not read); config.json is in llama-7b/hf: pick that folder",
  });
  await assert.rejects(openCheckpointFromFiles(files), /a checkpoint \(\.safetensors or \.bin\) is in llama-7b\/hf: pick that folder$/);
});

test("the adapter picker reads the picked folder's own adapter, not a checkpoint's listed before it", async () => {
  const [top, checkpoint] = [mkdtempSync(join(tmpdir(), 'huatuo-out-')), mkdtempSync(join(tmpdir(), 'huatuo-checkpoint-'))];
  await saveVersion('adapter', top, 'new');
  await saveVersion('adapter', checkpoint, 'old');
  const filesOf = (dir: string, folder: string) =>
    readdirSync(dir).sort().map((name) => Object.defineProperty(new File([readFileSync(join(dir, name))], name), 'webkitRelativePath', { value: `${folder}/${name}` }));
  const model = smallModel();
  try {
    const base = baseModelOf(model, await loadTokenizer(llamaTokenizerDir()), 'base', false);
    assert.equal(await uploadAdapter(base, [...filesOf(checkpoint, 'out/checkpoint-100'), ...filesOf(top, 'out')], {}), 'out');
    assert.equal(model.loraConfig?.r, 8, "the new adapter (r=8) saved in the picked folder, not the checkpoint's (r=4)");
  } finally {
    model.dispose();
  }
});
