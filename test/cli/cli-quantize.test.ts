// huatuo-train --quantize as a user runs it: generate answers on the demo model with an NF4 base, and
// a format that does not exist, or a thread count that is not a whole number of at least 1, is refused
// naming the flag before any model is loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, type ProcessRun } from './run-cli.js';


const cli = (args: string[]): Promise<ProcessRun> => runCli(args);

test('generate --quantize nf4 answers with the demo model quantized', async () => {
  const r = await cli(['generate', '--prompt', '我最近经常头痛，应该怎么办？', '--quantize', 'nf4', '--num-beams', '1', '--max-new-tokens', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /我最近经常头痛，应该怎么办？\n=> /);
});

test('--quantize int4 is refused naming the flag and the formats it takes', async () => {
  const r = await cli(['generate', '--prompt', 'x', '--quantize', 'int4']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--quantize \(quantize\): expected one of none, int8, nf4, got "int4"/);
});

test('--quantize-threads takes a whole number of at least 1, refused naming the flag in generate and train', async () => {
  for (const args of [['generate', '--prompt', 'x', '--quantize', 'nf4', '--quantize-threads', '0'], ['train', '--data', 'unread.json', '--quantize', 'nf4', '--quantize-threads', '2.5']]) {
    const r = await cli(args);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /--quantize-threads: expected a whole number of at least 1 \(1 quantizes on the main thread\), got "(0|2\.5)"/);
  }
});

