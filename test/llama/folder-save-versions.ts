// Two saves of an adapter and of a merged model of a small LLaMA, an old one and a new one that replaces it, for the
// tests of saves interrupted part way (folder-save-interrupted.test.ts, folder-save-child.ts).
import { applyLora, configFromPreset, createRandomLlama, llamaTokenizerDir, saveAdapter, saveMergedModel, type LlamaConfigOverrides } from '@huatuo/llama';

/** A LLaMA far smaller than the demo model (hidden size 32, one layer). */
const SMALL: LlamaConfigOverrides = { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 };

/**
 * Saves `version` of `kind` into `dir`, calling `beforeSave` just before: the old adapter r=4 on q_proj, the new one r=8
 * on q_proj and v_proj; the old model in shards with their index, the new one (a larger MLP, so another config.json) in
 * one model.safetensors (so the save removes the old shards and index), both with LLaMA's tokenizer. Each version is
 * the same bytes every time.
 */
export async function saveVersion(kind: 'adapter' | 'model', dir: string, version: 'old' | 'new', beforeSave: () => void = () => {}): Promise<void> {
  const sizes = kind === 'model' && version === 'new' ? { ...SMALL, intermediateSize: 96 } : SMALL;
  const model = createRandomLlama(configFromPreset('tiny', sizes), { seed: version === 'old' ? 1 : 2 });
  try {
    if (kind === 'adapter') {
      if (version === 'old') applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj'] }, { seed: 3 });
      else applyLora(model, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] }, { seed: 4 });
      beforeSave();
      await saveAdapter(model, dir);
    } else {
      beforeSave();
      await saveMergedModel(model, dir, { tokenizerDir: llamaTokenizerDir(), maxShardBytes: version === 'old' ? 2_000_000 : undefined });
    }
  } finally {
    model.dispose();
  }
}
