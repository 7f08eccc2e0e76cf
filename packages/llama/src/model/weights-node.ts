// Node side of weights: load a Hugging Face LLaMA folder onto the GPU, one tensor at a time,
// after checking every expected key and shape against config.json (weights-load.ts).

import { loadLlamaConfig } from '../formats/config-node.js';
import { finishInterruptedSave } from '../formats/folder-save-node.js';
import type { LlamaModel } from './model.js';
import { openCheckpoint } from '../formats/safetensors-node.js';
import { loadLlamaFromCheckpoint, type LoadLlamaOptions } from './weights-load.js';

/**
 * Loads a Hugging Face LLaMA folder (config.json and model.safetensors, or shards with
 * model.safetensors.index.json) onto the GPU. Every expected tensor's presence and shape is
 * checked before any is read; tensors stream one at a time, converted to `dtype` (default
 * 'f32'; 'f16' halves the memory where the adapter has shader-f16). `quantize: 'int8' | 'nf4'`
 * quantizes the decoder projections as they stream (an 8 GB GPU holds LLaMA-7B in NF4). A save into the folder that was
 * interrupted after its files were all written is completed first (see finishInterruptedSave).
 *
 * @example
 * await initWebGPU();
 * const model = await loadLlama('models/llama-7b', { dtype: 'f16', quantize: 'nf4', onProgress: (p) => console.log(p.tensorsRead, p.totalTensors) });
 */
export async function loadLlama(folder: string, options: LoadLlamaOptions = {}): Promise<LlamaModel> {
  await finishInterruptedSave(folder, { keepUncommitted: true });
  const config = await loadLlamaConfig(folder);
  const ckpt = await openCheckpoint(folder);
  try {
    return await loadLlamaFromCheckpoint(ckpt, config, folder, options);
  } finally {
    await ckpt.close();
  }
}
