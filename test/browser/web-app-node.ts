// Node's side of the web app test: the same demo model the page builds (LLaMA's tokenizer.model,
// random weights from the demo seed), PEFT adapters written by saveAdapter, and greedy answers.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  adaptedLinears,
  applyLora,
  configFromPreset,
  createRandomLlama,
  modelTensorsToWrite,
  toHfConfigJson,
  writeShardedCheckpoint,
  bytesSource,
  generate,
  llamaTokenizerDir,
  parsePeftConfig,
  peftKey,
  peftSavedEmbedKey,
  peftSavedLmHeadKey,
  SafetensorsFile,
  saveAdapter,
  setAdapterWeights,
  tokenizerFromFiles,
} from '@huatuo/llama';
import { DEMO_MODEL_NAME, demoBaseModel, generatePrompt, getResponse, MED_TEMPLATE, type BaseModel } from '@huatuo/sft';
import { initWebGPU, manualSeed, randn } from '@huatuo/tensor';

/** The page's demo base model, built in Node. */
export async function nodeDemoModel(): Promise<BaseModel> {
  await initWebGPU();
  const tokenizerModel = new Uint8Array(await readFile(join(llamaTokenizerDir(), 'tokenizer.model')));
  return demoBaseModel(tokenizerFromFiles({ tokenizerModel }, 'tokenizer.model'));
}

/** Loads a downloaded adapter's weights into the model and writes it with saveAdapter into `dir`. */
export async function resaveAdapter(base: BaseModel, configText: string, weights: Uint8Array, dir: string): Promise<void> {
  const st = await SafetensorsFile.open(bytesSource('downloaded adapter_model.safetensors', weights));
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const info of st.tensors) tensors.set(info.name, { shape: info.shape, data: await st.readAs(info.name, 'f32') });
  applyLora(base.model, parsePeftConfig(JSON.parse(configText), 'adapter_config.json'));
  setAdapterWeights(base.model, tensors, 'downloaded adapter_model.safetensors');
  await saveAdapter(base.model, dir, DEMO_MODEL_NAME);
}

/** A PEFT adapter with large random A and B (so it changes the answers), saved into `dir`. */
export async function writeStrongAdapter(base: BaseModel, dir: string): Promise<void> {
  manualSeed(7);
  applyLora(base.model, { r: 4, alpha: 64, targetModules: ['q_proj', 'v_proj'] }, { seed: 7 });
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const { layer, target, linear } of adaptedLinears(base.model)) {
    for (const [which, t] of [['A', linear.lora!.A], ['B', linear.lora!.B]] as const) {
      const r = randn(t.shape);
      tensors.set(peftKey(layer, target, which), { shape: t.shape, data: (await r.toArray()) as Float32Array });
      r.dispose();
    }
  }
  setAdapterWeights(base.model, tensors, 'random adapter');
  await saveAdapter(base.model, dir, DEMO_MODEL_NAME);
}

/** Greedy answers of the model as it stands (with whatever adapter it holds) to HuaTuo's prompt. */
export async function greedyAnswer(base: BaseModel, question: string, maxNewTokens: number): Promise<string> {
  const prompt = generatePrompt(MED_TEMPLATE, question);
  const [g] = await generate(base.model, base.tokenizer, prompt, { maxNewTokens });
  return getResponse(MED_TEMPLATE, prompt + g!.text);
}

/**
 * A Hugging Face LLaMA folder (one layer, two safetensors shards with their index, LLaMA's tokenizer.model), or one of
 * `tokenizer.vocabSize` pieces with the tokenizer files of `tokenizer.files` (by name) instead.
 */
export async function writeTinyHfFolder(dir: string, tokenizer?: { vocabSize: number; files: Record<string, string> }): Promise<void> {
  await mkdir(dir, { recursive: true });
  const vocab = tokenizer ? { vocabSize: tokenizer.vocabSize } : {};
  const config = configFromPreset('tiny', { numHiddenLayers: 1, hiddenSize: 32, intermediateSize: 86, numAttentionHeads: 2, numKeyValueHeads: 2, ...vocab });
  const model = createRandomLlama(config, { seed: 11, dtype: 'f32' });
  await writeShardedCheckpoint(dir, modelTensorsToWrite(model), { maxShardBytes: 3_000_000 });
  model.dispose();
  await writeFile(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(config), null, 2));
  if (!tokenizer) return copyFile(join(llamaTokenizerDir(), 'tokenizer.model'), join(dir, 'tokenizer.model'));
  for (const [name, text] of Object.entries(tokenizer.files)) await writeFile(join(dir, name), text);
}

/**
 * A PEFT adapter that also trains embed_tokens and lm_head (modules_to_save), their copies moved by
 * random rows so the answers change, saved into `dir`; `rows` other than the base's vocabulary make it
 * an adapter trained on a resized vocabulary.
 */
export async function writeSavedModulesAdapter(base: BaseModel, dir: string, rows = base.model.config.vocabSize): Promise<void> {
  manualSeed(9);
  applyLora(base.model, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'], modulesToSave: ['embed_tokens', 'lm_head'] }, { seed: 9 });
  const { hiddenSize } = base.model.config;
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const { layer, target, linear } of adaptedLinears(base.model)) {
    for (const [which, t] of [['A', linear.lora!.A], ['B', linear.lora!.B]] as const) tensors.set(peftKey(layer, target, which), { shape: t.shape, data: (await t.toArray()) as Float32Array });
  }
  for (const key of [peftSavedEmbedKey, peftSavedLmHeadKey]) {
    const r = randn([rows, hiddenSize]);
    tensors.set(key, { shape: r.shape, data: (await r.toArray()) as Float32Array });
    r.dispose();
  }
  setAdapterWeights(base.model, tensors, 'random trained copies');
  await saveAdapter(base.model, dir, DEMO_MODEL_NAME);
}
