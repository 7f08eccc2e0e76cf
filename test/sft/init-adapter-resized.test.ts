// train --init-adapter with an adapter that brings its own vocabulary (Chinese-LLaMA-Alpaca's continued training):
// the data is tokenized with the adapter's tokenizer, the run resumes exactly, and the output folder and each
// checkpoint hold that tokenizer's files byte for byte, so `--adapter` loads them with it and they answer alike.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaTokenizerDir, saveMergedModel } from '@huatuo/llama';
import { answerQuestions, DEFAULT_GENERATION, earlierRun, listCheckpoints, loadAdapterWithTokenizer, loadBaseModel, loadChatTemplate, runTraining } from '@huatuo/sft';
import { runCli } from '../cli/run-cli.js';
import { RESIZED_PIECES, RESIZED_TEXT, RESIZED_TOKENIZER_FILES, resizedAdapterFolder } from './resized-adapter-folder.js';
import { SMALL_MODEL, smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

let baseDir: string;
let adapterDir: string;
let dataPath: string;

before(async () => {
  await initWebGPU();
  baseDir = join(tmp(), 'base');
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 7 });
  await saveMergedModel(model, baseDir, { tokenizerDir: llamaTokenizerDir() });
  model.dispose();
  adapterDir = resizedAdapterFolder();
  // Answers that end with an added token, one id only with the adapter's tokenizer.
  dataPath = writeRecords(tmp(), smallRecords(12).map((r) => ({ ...r, output: `${r.output} <med_5>` })));
});

function assertTokenizerOf(dir: string): void {
  for (const f of RESIZED_TOKENIZER_FILES) assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(adapterDir, f)), `${f} in ${dir}, byte for byte`);
}

test("--init-adapter with its own vocabulary tokenizes the data with the adapter's tokenizer, and a resumed run takes the same steps", async () => {
  const config = (outputDir: string) => smallConfig(dataPath, outputDir, { baseModel: baseDir, cutoffLen: 128, maxSteps: 4, saveSteps: 2, evalSteps: 2, precision: 'f32' });
  const dry = await runTraining({ config: config(tmp()), initAdapter: adapterDir, dryRun: true });
  try {
    assert.equal(dry.base.model.config.vocabSize, RESIZED_PIECES);
    assert.ok(dry.data.train.every((e) => e.inputIds.includes(32005)), 'every training record holds <med_5> as one id');
  } finally {
    dry.base.model.dispose();
  }
  const full = await runTraining({ config: config(tmp()), initAdapter: adapterDir });
  full.base.model.dispose();
  const outputDir = tmp();
  const stopped = await runTraining({ config: config(outputDir), initAdapter: adapterDir, stopAfterStep: 2 });
  stopped.base.model.dispose();
  const checkpoint = (await listCheckpoints(outputDir)).find((c) => c.step === 2)!;
  assertTokenizerOf(checkpoint.dir);
  const resumed = await runTraining({ config: config(outputDir), initAdapter: adapterDir, resume: checkpoint.dir });
  try {
    for (const s of [3, 4]) assert.equal(resumed.result!.stepLosses.get(s), full.result!.stepLosses.get(s), `step ${s} loss after resuming`);
    assert.ok(resumed.base.tokenizer.encode(RESIZED_TEXT).includes(32005), "the resumed run keeps the adapter's tokenizer");
    // Written after the resume, from the adapter loaded from checkpoint-2.
    assertTokenizerOf((await listCheckpoints(outputDir)).find((c) => c.step === 4)!.dir);
    assertTokenizerOf(outputDir);
  } finally {
    resumed.base.model.dispose();
  }
});

test('huatuo-train --init-adapter <resized adapter>: the output folder and its checkpoint hold its tokenizer and load with --adapter, answering as the library', async () => {
  const out = join(tmp(), 'out');
  const train = await runCli(['train', '--base', baseDir, '--data', dataPath, '--init-adapter', adapterDir, '--output-dir', out, '--precision', 'f32',
    '--val-set-size', '2', '--batch-size', '4', '--micro-batch', '2', '--max-steps', '2', '--save-steps', '2', '--eval-steps', '2', '--cutoff-len', '128']);
  assert.equal(train.code, 0, train.stderr);
  const checkpoint = join(out, 'checkpoint-2');
  assertTokenizerOf(out);
  assertTokenizerOf(checkpoint);
  // --template chat: the chat template of the adapter folder whose tokenizer is in use (its chat_template.jinja).
  const answers: string[] = [];
  for (const dir of [out, checkpoint]) {
    const run = await runCli(['generate', '--base', baseDir, '--adapter', dir, '--template', 'chat', '--prompt', RESIZED_TEXT, '--num-beams', '1', '--max-new-tokens', '4', '--base-dtype', 'f32']);
    assert.equal(run.code, 0, run.stderr);
    answers.push(run.stdout);
  }
  assert.equal(answers[0], answers[1], 'the output folder answers as its checkpoint');
  const base = await loadBaseModel(baseDir, undefined, { dtype: 'f32' });
  try {
    assert.equal(await loadAdapterWithTokenizer(base, out), out);
    assert.ok(base.tokenizer.encode(RESIZED_TEXT).includes(32005), "the output folder's tokenizer is the adapter's");
    const template = await loadChatTemplate(adapterDir);
    const [a] = await answerQuestions(base.model, base.tokenizer, template, [RESIZED_TEXT], { ...DEFAULT_GENERATION, numBeams: 1, maxNewTokens: 4 });
    assert.ok(answers[0]!.endsWith(`\n${RESIZED_TEXT}\n=> ${a!.answer}\n\n`), `the command line's answer ${JSON.stringify(answers[0])} is the library's with the adapter's tokenizer and chat template`);
  } finally {
    base.model.dispose();
  }
});

test("a run's folder counts the tokenizer files beside its adapter, which --overwrite-output-dir replaces, and leaves a folder's tokenizer without an adapter alone", async () => {
  const run = ['adapter_config.json', 'adapter_model.safetensors', 'checkpoint-2', 'metrics.jsonl', ...RESIZED_TOKENIZER_FILES, 'notes.txt'];
  const found = await earlierRun({ list: async () => run }, 'out');
  assert.deepEqual(found, run.filter((n) => n !== 'notes.txt').sort());
  assert.deepEqual(await earlierRun({ list: async () => ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'] }, 'base'), []);
});
