// trainer_state.json's total_flos is transformers 4.57.6's estimate: per micro-batch read, 6 x input_ids.numel()
// (the padded micro-batch) x the PEFT model's num_parameters(exclude_embeddings=True), stored at each log, save
// and the end. The count is restated here from the model's config and the LoRA settings.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromPreset } from '@huatuo/llama';
import { initWebGPU } from '@huatuo/tensor';
import { train, trainingSchedule, type HfTrainerState, type TrainConfig } from '@huatuo/sft';
import { stepBatches } from '@huatuo/sft/internal';
import { SMALL_MODEL, smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

let dataPath: string;

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

/**
 * num_parameters(exclude_embeddings=True) of the PEFT model on the test LLaMA: every decoder weight and norm,
 * the final norm and the untied lm_head (embed_tokens is an nn.Embedding), LoRA's A [r, in] and B [out, r] per
 * target, DoRA's magnitude [out], and the lm_head copy of modules_to_save.
 */
function peftNonEmbeddingParameters(config: TrainConfig): number {
  const m = configFromPreset('tiny', SMALL_MODEL);
  const C = m.hiddenSize;
  const q = m.numAttentionHeads * m.headDim;
  const kv = m.numKeyValueHeads * m.headDim;
  const shapes: Record<string, [number, number]> = { q_proj: [q, C], k_proj: [kv, C], v_proj: [kv, C], o_proj: [C, q], gate_proj: [m.intermediateSize, C], up_proj: [m.intermediateSize, C], down_proj: [C, m.intermediateSize] };
  let layer = 2 * C;
  for (const [out, inp] of Object.values(shapes)) layer += out * inp;
  for (const target of config.loraTargetModules) {
    const [out, inp] = shapes[target]!;
    layer += config.loraR * inp + out * config.loraR + (config.loraUseDora ? out : 0);
  }
  const lmHead = m.tieWordEmbeddings ? 0 : m.vocabSize * C;
  const lmHeadCopy = config.loraModulesToSave.includes('lm_head') ? m.vocabSize * C : 0;
  return m.numHiddenLayers * layer + C + lmHead + lmHeadCopy;
}

/** Runs `config` with micro-batches of 2 and returns the flos of each step's padded micro-batches beside the result. */
async function runAndCount(config: TrainConfig, options: { resume?: string; stopAfterStep?: number } = {}) {
  const { data, model, base } = await smallRun(config);
  try {
    const schedule = trainingSchedule(config, data.train.length, 2);
    const batchesOf = stepBatches(data.train.length, config, schedule, 2);
    const parameters = peftNonEmbeddingParameters(config);
    const stepFlos = Array.from({ length: schedule.totalSteps }, (_, s) =>
      batchesOf(s).chunks.reduce((sum, chunk) => {
        const longest = Math.max(...chunk.map((i) => data.train[i]!.inputIds.length));
        const padded = Math.ceil(longest / config.padToMultipleOf) * config.padToMultipleOf;
        return sum + 6 * chunk.length * padded * parameters;
      }, 0),
    );
    const result = await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, ...options });
    return { result, stepFlos, parameters };
  } finally {
    base.model.dispose();
  }
}

const readState = (dir: string) => JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as HfTrainerState;
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

test("total_flos is 6 x each padded micro-batch's input_ids.numel() x the PEFT model's non-embedding parameters, in checkpoints and the final log", async () => {
  const out = tmp();
  // 10 records, micro-batch 2, accumulation 2, --epoch-remainder step: 3 steps an epoch, 6 in all; saves at 3 and 6.
  const config = smallConfig(dataPath, out, { epochRemainder: 'step', numEpochs: 2, loggingSteps: 2, evalSteps: 3, saveSteps: 3 });
  const { result, stepFlos, parameters } = await runAndCount(config);
  assert.equal(stepFlos.length, 6);
  // One layer of hidden size 32 (q_proj and v_proj 32 x 32, the MLP 3 x 32 x 64), two norms of 32, a final norm, the
  // untied 32,000 x 32 lm_head, and rank-4 LoRA on q_proj and v_proj.
  assert.equal(parameters, 2 * 32 + 4 * 32 * 32 + 3 * 32 * 64 + 32 + 32000 * 32 + 2 * (4 * 32 + 32 * 4));
  const total = sum(stepFlos);
  assert.ok(total > 0);
  assert.equal(result.state.total_flos, total);
  assert.equal(readState(join(out, 'checkpoint-3')).total_flos, sum(stepFlos.slice(0, 3)));
  const final = readState(out);
  assert.equal(final.total_flos, total);
  const end = final.log_history.at(-1) as unknown as Record<string, number>;
  assert.equal(end.total_flos, total);
});

test('total_flos counts DoRA magnitudes and the trained lm_head copy, not the embed_tokens copy', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out, { epochRemainder: 'step', numEpochs: 1, evalSteps: 3, saveSteps: 3, loraUseDora: true, loraModulesToSave: ['embed_tokens', 'lm_head'] });
  const { result, stepFlos, parameters } = await runAndCount(config);
  assert.equal(parameters, 2 * 32 + 4 * 32 * 32 + 3 * 32 * 64 + 32 + 2 * 32000 * 32 + 2 * (4 * 32 + 32 * 4 + 32));
  assert.equal(result.state.total_flos, sum(stepFlos));
  assert.equal(readState(out).total_flos, sum(stepFlos));
});

test('a resumed run counts the micro-batches after its checkpoint once: its total_flos is the uninterrupted run\'s', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out, { epochRemainder: 'step', numEpochs: 2, loggingSteps: 2, evalSteps: 3, saveSteps: 3 });
  // Stopping after step 4 leaves checkpoint-3, whose total_flos covers steps 1-3; step 4 runs again after the resume.
  const stopped = await runAndCount(config, { stopAfterStep: 4 });
  assert.equal(readState(join(out, 'checkpoint-3')).total_flos, sum(stopped.stepFlos.slice(0, 3)));
  const { result, stepFlos } = await runAndCount(config, { resume: 'latest' });
  assert.equal(result.state.total_flos, sum(stepFlos));
  assert.equal(readState(out).total_flos, sum(stepFlos));
});
