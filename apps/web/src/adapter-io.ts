// The adapter in and out of the page: downloads of adapter_config.json and adapter_model.safetensors
// (the bytes Node's saveAdapter writes), and a PEFT adapter folder or its two files loaded from disk
// (adapter_model.safetensors, or the older adapter_model.bin). An adapter's trained embed_tokens and
// lm_head (PEFT's modules_to_save) come and go with it; one trained on another vocabulary is refused,
// since the page chats with the base's tokenizer.

import { adapterConfigName, adapterTorchWeightsName, adapterWeightsName, blobSource, loadAdapterFromFiles, openTensorFile, peftSavedEmbedKey, serializeAdapter, type LlamaModel } from '@huatuo/llama';
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
  const vocab = await savedEmbedRows(weights);
  if (vocab !== null && vocab !== model.config.vocabSize) {
    throw new Error(
      `${weights.name} trains embed_tokens on a vocabulary of ${vocab} pieces, but the base has ${model.config.vocabSize}: it needs the tokenizer it was trained with, ` +
        'which the page does not load. Merge it into the base (huatuo merge --base <base folder> --adapter <adapter folder> --out <folder>) and pick the merged folder as the base model',
    );
  }
  await loadAdapterFromFiles(model, await config.text(), config.name, blobSource(weights));
  const rel = (config as File & { webkitRelativePath?: string }).webkitRelativePath ?? '';
  return rel.includes('/') ? rel.split('/')[0]! : config.name;
}

/** The rows of the adapter's trained copy of embed_tokens (modules_to_save), or null when it has none. */
async function savedEmbedRows(weights: File): Promise<number | null> {
  const file = await openTensorFile(blobSource(weights));
  try {
    return file.tensors.find((t) => t.name === peftSavedEmbedKey)?.shape[0] ?? null;
  } finally {
    await file.close();
  }
}
