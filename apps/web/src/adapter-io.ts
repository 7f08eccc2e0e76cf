// The adapter in and out of the page: downloads of adapter_config.json and adapter_model.safetensors
// (the bytes Node's saveAdapter writes), and a PEFT adapter folder or its two files loaded from disk
// (adapter_model.safetensors, or the older adapter_model.bin).

import { adapterConfigName, adapterTorchWeightsName, adapterWeightsName, blobSource, loadAdapterFromFiles, serializeAdapter, type LlamaModel } from '@huatuo/llama';
import { download } from './dom.js';

/** Offers the model's adapter as PEFT's two files. */
export async function downloadAdapter(model: LlamaModel, baseName: string, which: 'config' | 'weights'): Promise<void> {
  const { config, weights } = await serializeAdapter(model, baseName);
  if (which === 'config') download(adapterConfigName, config, 'application/json');
  else download(adapterWeightsName, weights, 'application/octet-stream');
}

/** Loads a PEFT adapter from picked files (a folder or the two files), replacing the model's adapter. */
export async function uploadAdapter(model: LlamaModel, files: readonly File[]): Promise<string> {
  const config = files.find((f) => f.name === adapterConfigName);
  const weights = files.find((f) => f.name === adapterWeightsName) ?? files.find((f) => f.name === adapterTorchWeightsName);
  const picked = files.map((f) => f.name).join(', ') || 'no files';
  if (!config) throw new Error(`no ${adapterConfigName} among the picked files (${picked}); pick a PEFT adapter folder`);
  if (!weights) throw new Error(`no ${adapterWeightsName} or ${adapterTorchWeightsName} among the picked files (${picked}); pick a PEFT adapter folder`);
  await loadAdapterFromFiles(model, await config.text(), config.name, blobSource(weights));
  const rel = (config as File & { webkitRelativePath?: string }).webkitRelativePath ?? '';
  return rel.includes('/') ? rel.split('/')[0]! : config.name;
}
