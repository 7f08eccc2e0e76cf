// A tiny Qwen2 model folder for the training, generate and serve tests: a random qwen2 model (q, k and v biases)
// over a 270-id byte-level BPE tokenizer.json with Qwen2's components, and a tokenizer_config.json shaped like
// Qwen2-7B-Instruct's (bos_token null, eos <|im_end|>, pad <|endoftext|>, its ChatML chat_template).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromPreset, createRandomLlama, saveMergedModel } from '@huatuo/llama';
import { ENDOFTEXT, IM_END, QWEN2_TOKENIZER_CONFIG, VOCAB_SIZE, qwen2TokenizerJson } from '../llama/qwen2-tokenizer-files.js';

export { CHATML_TEMPLATE, ENDOFTEXT, IM_END, IM_START, QWEN2_TOKENIZER_CONFIG, VOCAB_SIZE } from '../llama/qwen2-tokenizer-files.js';

/**
 * Writes a tiny random Qwen2 model (hidden size 32, one layer, biases on q, k and v; config.json's bos_token_id
 * <|endoftext|> and eos_token_id <|im_end|> as Qwen2-7B-Instruct's) with the Qwen2-style tokenizer of ../llama/qwen2-tokenizer-files.ts into a new folder.
 * `tokenizerConfig` replaces fields of the tokenizer_config.json.
 */
export async function qwen2ModelFolder(tokenizerConfig: Record<string, unknown> = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-qwen2-'));
  const config = configFromPreset('tiny', {
    modelType: 'qwen2', vocabSize: VOCAB_SIZE, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2,
    bosTokenId: ENDOFTEXT, eosTokenId: IM_END,
  });
  const model = createRandomLlama(config, { seed: 7 });
  try {
    await saveMergedModel(model, dir);
  } finally {
    model.dispose();
  }
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(qwen2TokenizerJson()));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...QWEN2_TOKENIZER_CONFIG, ...tokenizerConfig }, null, 2));
  return dir;
}
