// Training from text on a Qwen2 model folder (a tokenizer without BOS: bos_token null), as alpaca-lora's
// finetune.py tokenizes with Qwen2's tokenizer: no BOS, EOS (<|im_end|>) appended when the last id is not
// EOS and there is room, padding with id 0 (tokenizer.pad_token_id = 0); and `huatuo-train eval` on it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { loadTokenizer, type Tokenizer } from '@huatuo/llama';
import { buildProgram } from '@huatuo/cli';
import { IGNORE_INDEX, MED_TEMPLATE, collate, generatePrompt, runTraining, textTokenizer, tokenizeText } from '@huatuo/sft';
import { IM_END, qwen2ModelFolder } from './qwen2-folder.js';
import { smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

let dir: string;
let tok: Tokenizer;

before(async () => {
  await initWebGPU();
  dir = await qwen2ModelFolder();
  tok = await loadTokenizer(dir);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("tokenizeText with Qwen2's tokenizer: no BOS, EOS appended when there is room, none when the text fills cutoffLen", () => {
  const text = textTokenizer(tok);
  assert.equal(text.bosId, undefined);
  // "Hello" is one merged piece (262), " world" another (264); transformers: tokenizer("Hello world", truncation=True, max_length=n).
  assert.deepEqual(tokenizeText(text, 'Hello world', 256, true), [262, 264, IM_END]);
  assert.deepEqual(tokenizeText(text, 'Hello world', 2, true), [262, 264]);
  assert.deepEqual(tokenizeText(text, 'Hello world', 1, true), [262]);
  assert.deepEqual(tokenizeText(text, 'Hello world<|im_end|>', 256, true), [262, 264, IM_END], 'a text ending with EOS gets no second one');
  const withPrefix = { ...text, encode: (s: string, o?: { addBos?: boolean; addEos?: boolean }) => [5, ...text.encode(s, o)] };
  assert.throws(() => tokenizeText(withPrefix, 'Hello', 256, true), /puts a token first by default \(BOS\) but it has no bosId/);
});

test('a Qwen2 folder trains from text through runTraining: each example is the text without BOS and EOS last, the prompt masked, batches padded with 0', async () => {
  const records = smallRecords(6);
  const config = smallConfig(writeRecords(tmp(), records), tmp(), { baseModel: dir, precision: 'f32', cutoffLen: 256, numEpochs: 2, saveSteps: 1000, evalSteps: 1000 });
  const outcome = await runTraining({ config });
  try {
    const { data, result } = outcome;
    assert.equal(data.train.length, 4);
    for (const [i, ex] of data.train.entries()) {
      const r = data.trainRecords[i]!;
      const prompt = tok.encode(generatePrompt(MED_TEMPLATE, r.instruction, r.input));
      const full = tok.encode(generatePrompt(MED_TEMPLATE, r.instruction, r.input, r.output));
      assert.deepEqual(full.slice(0, prompt.length), prompt, 'the prompt tokenizes as a prefix');
      assert.deepEqual(ex.inputIds, [...full, IM_END], `record ${i}: the text's ids (no BOS) and <|im_end|>`);
      assert.deepEqual(ex.labels, [...prompt.map(() => IGNORE_INDEX), ...full.slice(prompt.length), IM_END]);
    }
    const batch = collate(data.train.slice(0, 2), { padId: config.padId, padToMultipleOf: config.padToMultipleOf, paddingSide: config.paddingSide });
    const lengths = data.train.slice(0, 2).map((e) => e.inputIds.length);
    for (let b = 0; b < 2; b++) {
      const row = [...batch.inputIds.subarray(b * batch.seqLen, (b + 1) * batch.seqLen)];
      const pad = batch.seqLen - lengths[b]!;
      assert.deepEqual(row, [...new Array<number>(pad).fill(0), ...data.train[b]!.inputIds], 'left padding with id 0');
      assert.equal(row[row.length - 1], IM_END);
    }
    assert.equal(result!.state.step, 2);
    const losses = [...result!.stepLosses.values()];
    assert.equal(losses.length, 2);
    assert.ok(losses.every(Number.isFinite), `finite losses: ${losses.join(', ')}`);
    // A near-uniform random model over 270 ids: the loss starts near ln 270 = 5.6.
    assert.ok(Math.abs(losses[0]! - Math.log(270)) < 0.5, `first loss ${losses[0]}`);
    assert.ok(existsSync(join(config.outputDir, 'adapter_model.safetensors')));
  } finally {
    outcome.base.model.dispose();
  }
});

test('huatuo-train eval scores a data file on a Qwen2 folder', async () => {
  const data = writeRecords(tmp(), smallRecords(3));
  let printed = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    printed += String(chunk);
    return write.call(process.stdout, chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    await buildProgram().parseAsync(['eval', '--base', dir, '--data', data, '--base-dtype', 'f32', '--cutoff-len', '256'], { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  const m = /: 3 records, loss (\d+\.\d+), perplexity/.exec(printed);
  assert.ok(m, printed);
  assert.ok(Math.abs(Number(m[1]) - Math.log(270)) < 0.5, `the loss of a near-uniform random model over 270 ids: ${m[1]}`);
});
