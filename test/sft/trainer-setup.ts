// Shared pieces of the trainer, resume and CLI tests: a LLaMA far smaller than the demo model
// (LLaMA's 32,000-piece vocabulary and tokenizer, hidden size 32, one layer), a few short records
// in a temporary JSONL file, and a recipe small enough that a step takes a fraction of a second.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlamaConfigOverrides } from '@huatuo/llama';
import { attachLora, loadBaseModel, prepareData, resolveConfig, type BaseModel, type LoraModel, type PreparedData, type TrainConfig } from '@huatuo/sft';

/** The test model: the `tiny` preset cut down to hidden size 32 and one layer. */
export const SMALL_MODEL: LlamaConfigOverrides = { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 };

export function tmp(prefix = 'huatuo-train-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** `n` short question/answer records (the med template's prompt is about 50 tokens). */
export function smallRecords(n: number): { instruction: string; input: string; output: string }[] {
  const answers = ['drink water and rest', 'see a doctor soon', 'take the tablets twice a day', 'sleep more'];
  return Array.from({ length: n }, (_, i) => ({ instruction: `Q${i} headache?`, input: '', output: `${answers[i % answers.length]} ${i}` }));
}

/** Writes records as JSONL into `dir` and returns the file. */
export function writeRecords(dir: string, records: readonly object[], name = 'data.jsonl'): string {
  const file = join(dir, name);
  writeFileSync(file, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return file;
}

/**
 * The recipe on 12 records (2 for validation): batch 4 = micro-batch 2 x accumulation 2, so 2
 * optimizer steps per epoch and 20 in all; checkpoints and evaluations every 5 steps; LoRA
 * dropout 0.05 as HuaTuo's recipe.
 */
export function smallConfig(dataPath: string, outputDir: string, overrides: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    dataPath,
    outputDir,
    cutoffLen: 64,
    valSetSize: 2,
    batchSize: 4,
    microBatchSize: 2,
    numEpochs: 10,
    loraR: 4,
    loraAlpha: 8,
    loraDropout: 0.05,
    loraTargetModules: ['q_proj', 'v_proj'],
    learningRate: 3e-3,
    loggingSteps: 1,
    evalSteps: 5,
    saveSteps: 5,
    saveTotalLimit: 10,
    // 5 micro-batches an epoch against accumulation 2: 2 steps an epoch, the fifth carried into the next
    // (the default, step, would make it 3; train-epoch-remainder.test.ts runs that)
    epochRemainder: 'carry',
    ...overrides,
  });
}

/** A fresh base model (the same seeded weights every time), the data and the LoRA model. */
export async function smallRun(config: TrainConfig): Promise<{ base: BaseModel; data: PreparedData; model: LoraModel }> {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  const data = await prepareData(config, base);
  const model = attachLora(base, config);
  return { base, data, model };
}
