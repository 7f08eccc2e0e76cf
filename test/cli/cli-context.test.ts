// --max-model-len and --allow-long-max-model-len on generate and train, on a model folder whose config.json
// has max_position_embeddings 16 and rope_scaling yarn factor 8: lengths up to 128 (vLLM's derived
// max_model_len) are accepted, a longer --max-model-len is refused naming the flag that allows it.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaTokenizerDir, saveMergedModel } from '@huatuo/llama';
import { SMALL_MODEL, smallRecords, tmp, writeRecords } from '../sft/trainer-setup.js';
import { runCli, type ProcessRun } from './run-cli.js';


let modelDir: string;
let dataPath: string;

const cli = (args: string[]): Promise<ProcessRun> => runCli(args);

before(async () => {
  await initWebGPU();
  const model = createRandomLlama(configFromPreset('tiny', { ...SMALL_MODEL, maxPositionEmbeddings: 16, ropeScaling: { type: 'yarn', factor: 8 } }), { seed: 7 });
  modelDir = join(tmp(), 'yarn-llama');
  await saveMergedModel(model, modelDir, { tokenizerDir: llamaTokenizerDir() });
  model.dispose();
  assert.deepEqual(JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')).rope_scaling, { rope_type: 'yarn', factor: 8 });
  dataPath = writeRecords(tmp(), smallRecords(12));
});

const generateArgs = (...more: string[]) => ['generate', '--base', modelDir, '--prompt', '头痛怎么办？', '--num-beams', '1', '--base-dtype', 'f32', ...more];

test('generate answers past max_position_embeddings up to the yarn-stretched context, and --max-model-len lowers it', async () => {
  const ok = await cli(generateArgs('--max-new-tokens', '4'));
  assert.equal(ok.code, 0, ok.stderr);
  const short = await cli(generateArgs('--max-new-tokens', '4', '--max-model-len', '32'));
  assert.equal(short.code, 1);
  assert.match(short.stderr, /beyond the model's context of 32 tokens \(set by --max-model-len/);
});

test('a --max-model-len above the derived context is refused unless --allow-long-max-model-len is given', async () => {
  const refused = await cli(generateArgs('--max-new-tokens', '4', '--max-model-len', '200'));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /--max-model-len: maxModelLen 200 \(--max-model-len\) is beyond the 128 tokens config\.json allows \(max_position_embeddings 16 × rope_scaling "yarn" factor 8\); lower it to 128 or less, or allow it with allowLongMaxModelLen \(--allow-long-max-model-len\)/);
  const long = await cli(generateArgs('--max-new-tokens', '90'));
  assert.equal(long.code, 1);
  assert.match(long.stderr, /prompts plus maxNewTokens reach 1[3-9]\d tokens, beyond the model's context of 128 tokens/);
  const allowed = await cli(generateArgs('--max-new-tokens', '90', '--max-model-len', '200', '--allow-long-max-model-len'));
  assert.equal(allowed.code, 0, allowed.stderr);
  const alone = await cli(generateArgs('--allow-long-max-model-len'));
  assert.equal(alone.code, 1);
  assert.match(alone.stderr, /--allow-long-max-model-len: .*give the length with --max-model-len <n>/);
});

test('train --cutoff-len may reach the yarn-stretched context, and no further', async () => {
  const args = (cutoff: string) => ['train', '--dry-run', '--base', modelDir, '--data', dataPath, '--output-dir', join(tmp(), 'out'), '--cutoff-len', cutoff, '--val-set-size', '2', '--batch-size', '4', '--micro-batch', '2'];
  const ok = await cli(args('128'));
  assert.equal(ok.code, 0, ok.stderr);
  const over = await cli(args('129'));
  assert.equal(over.code, 1);
  assert.match(over.stderr, /--cutoff-len \(cutoffLen\): 129 tokens is beyond the context of .*, 128 tokens \(max_position_embeddings 16 × rope_scaling "yarn" factor 8\)/);
});
