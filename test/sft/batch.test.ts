import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IGNORE_INDEX, collate, tokenizeRecord, tokenizeRecords, tokenizeText, chunkOrder, epochOrder, type TokenizedExample, MED_TEMPLATE, generatePrompt } from '@huatuo/sft';
import { llama, llamaText, pieces } from './llama-tokenizer.js';

const question = '头痛怎么办？';
const answer = '多喝水。';
const record = { instruction: question, input: '', output: answer };

// The med_template prompt is four lines; "\n" is the byte piece <0x0A> (id 13), which no
// LLaMA piece merges with, so each line can be tokenized alone and the ids joined.
const NL = 13;
const line1 = llama.encode('下面是一个问题，运用医学知识来正确回答提问.', false, true); // with the "▁" dummy prefix
const promptIds = [1, ...line1, NL, ...pieces('### 问题:'), NL, ...pieces(question), NL, ...pieces('### 回答:'), NL];
const answerIds = pieces(answer);

test('the hand-assembled pieces are the LLaMA pieces they are meant to be', () => {
  assert.equal(llama.vocabById[NL], '<0x0A>');
  assert.deepEqual(pieces('### 回答:').slice(0, 3).map((i) => llama.vocabById[i]), ['##', '#', '▁']);
  assert.equal(llama.vocabById[line1[0]!], '▁');
  assert.deepEqual(llama.encode('the'), [1, 278]);
  assert.deepEqual(answerIds.map((i) => llama.vocabById[i]), ['多', '<0xE5>', '<0x96>', '<0x9D>', '水', '。']);
});

test('a record tokenizes to BOS + prompt + answer + EOS with labels -100 exactly on BOS and the prompt', () => {
  const ex = tokenizeRecord(record, MED_TEMPLATE, llamaText, { cutoffLen: 256, trainOnInputs: false });
  assert.deepEqual(ex.inputIds, [...promptIds, ...answerIds, 2]);
  assert.deepEqual(ex.labels, [...promptIds.map(() => IGNORE_INDEX), ...answerIds, 2]);
  assert.equal(ex.promptLength, promptIds.length);
  assert.equal(ex.fullLength, promptIds.length + answerIds.length);
  assert.equal(ex.eosAppended, true);
});

test('with trainOnInputs the labels equal the input ids', () => {
  const ex = tokenizeRecord(record, MED_TEMPLATE, llamaText, { cutoffLen: 256, trainOnInputs: true });
  assert.deepEqual(ex.labels, ex.inputIds);
});

test('tokenizeText adds BOS, truncates to cutoffLen and appends EOS only below it', () => {
  assert.deepEqual(tokenizeText(llamaText, 'the', 256, true), [1, 278, 2]);
  assert.deepEqual(tokenizeText(llamaText, 'the', 256, false), [1, 278]);
  assert.deepEqual(tokenizeText(llamaText, 'the', 2, true), [1, 278]);
  assert.deepEqual(tokenizeText(llamaText, 'the', 1, true), [1]);
});

const P = promptIds.length;
const A = answerIds.length;

test('cutoffLen one above BOS + prompt + answer keeps everything and appends EOS', () => {
  const ex = tokenizeRecord(record, MED_TEMPLATE, llamaText, { cutoffLen: P + A + 1, trainOnInputs: false });
  assert.deepEqual(ex.inputIds, [...promptIds, ...answerIds, 2]);
  const { warnings } = tokenizeRecords([record], MED_TEMPLATE, llamaText, { cutoffLen: P + A + 1, trainOnInputs: false });
  assert.deepEqual(warnings, []);
});

test('a sequence exactly cutoffLen long is not cut but gets no EOS, with a warning', () => {
  const ex = tokenizeRecord(record, MED_TEMPLATE, llamaText, { cutoffLen: P + A, trainOnInputs: false });
  assert.deepEqual(ex.inputIds, [...promptIds, ...answerIds]);
  assert.deepEqual(ex.labels, [...promptIds.map(() => IGNORE_INDEX), ...answerIds]);
  assert.equal(ex.eosAppended, false);
  const { warnings } = tokenizeRecords([record], MED_TEMPLATE, llamaText, { cutoffLen: P + A, trainOnInputs: false });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.message, /record 1: .*exactly cutoffLen/);
});

test('an over-long answer is truncated to the cutoff without EOS, with a warning naming the record', () => {
  const ex = tokenizeRecord(record, MED_TEMPLATE, llamaText, { cutoffLen: P + 2, trainOnInputs: false });
  assert.deepEqual(ex.inputIds, [...promptIds, ...answerIds.slice(0, 2)]);
  assert.deepEqual(ex.labels, [...promptIds.map(() => IGNORE_INDEX), ...answerIds.slice(0, 2)]);
  const located = { ...record, location: { file: '/tmp/x.jsonl', line: 7 } };
  const { warnings } = tokenizeRecords([located], MED_TEMPLATE, llamaText, { cutoffLen: P + 2, trainOnInputs: false });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.message, /^x\.jsonl line 7: prompt \+ answer is \d+ tokens, over cutoffLen \d+; the answer is truncated to its first 2 tokens/);
});

test('a prompt that fills the cutoff exactly leaves only -100 labels', () => {
  const ex = tokenizeRecord(record, MED_TEMPLATE, llamaText, { cutoffLen: P, trainOnInputs: false });
  assert.deepEqual(ex.inputIds, promptIds);
  assert.ok(ex.labels.every((l) => l === IGNORE_INDEX));
});

test('a prompt longer than the cutoff is cut, masked entirely, and reported as adding no loss', () => {
  const ex = tokenizeRecord(record, MED_TEMPLATE, llamaText, { cutoffLen: P - 3, trainOnInputs: false });
  assert.deepEqual(ex.inputIds, promptIds.slice(0, P - 3));
  assert.equal(ex.promptLength, P - 3);
  assert.deepEqual(ex.labels, new Array(P - 3).fill(IGNORE_INDEX));
  const { warnings } = tokenizeRecords([record], MED_TEMPLATE, llamaText, { cutoffLen: P - 3, trainOnInputs: false });
  assert.match(warnings[0]!.message, /adds no loss/);
});

const cjk = fc.string({ unit: fc.constantFrom(...'头痛发热咳嗽高血压糖尿病饮食运动睡眠医生检查药物，。？a1 '.split('')), minLength: 1, maxLength: 80 });

test('tokenized examples keep alpaca-lora invariants for any text and cutoff', () => {
  fc.assert(
    fc.property(cjk, cjk, fc.integer({ min: 2, max: 120 }), (q, a, cutoffLen) => {
      fc.pre(q.trim() !== '' && a.trim() !== '');
      const r = { instruction: q, input: '', output: a };
      const ex = tokenizeRecord(r, MED_TEMPLATE, llamaText, { cutoffLen, trainOnInputs: false });
      const full = llamaText.encode(generatePrompt(MED_TEMPLATE, q, '', a));
      const prompt = llamaText.encode(generatePrompt(MED_TEMPLATE, q, ''));
      assert.ok(ex.inputIds.length <= cutoffLen);
      assert.deepEqual(ex.inputIds.slice(0, Math.min(full.length, cutoffLen)), full.slice(0, cutoffLen));
      assert.equal(ex.eosAppended, full.length < cutoffLen);
      assert.equal(ex.inputIds.length, Math.min(full.length, cutoffLen) + (ex.eosAppended ? 1 : 0));
      const masked = Math.min(prompt.length, cutoffLen);
      assert.equal(ex.labels.length, ex.inputIds.length);
      ex.labels.forEach((l, i) => assert.equal(l, i < masked ? IGNORE_INDEX : ex.inputIds[i]));
    }),
    { numRuns: 150 },
  );
});

function example(length: number, promptLength: number, base: number): TokenizedExample {
  const inputIds = Array.from({ length }, (_, i) => base + i);
  return { inputIds, labels: inputIds.map((id, i) => (i < promptLength ? IGNORE_INDEX : id)), promptLength, fullLength: length, eosAppended: false };
}

test('collate pads on the left to the longest length rounded up to a multiple of 8', () => {
  const exs = [example(3, 1, 100), example(10, 4, 200), example(17, 5, 300)];
  const b = collate(exs, { padId: 0, padToMultipleOf: 8, paddingSide: 'left' });
  assert.equal(b.batchSize, 3);
  assert.equal(b.seqLen, 24);
  exs.forEach((ex, r) => {
    const row = (a: Int32Array) => Array.from(a.subarray(r * 24, (r + 1) * 24));
    const pad = 24 - ex.inputIds.length;
    assert.deepEqual(row(b.inputIds), [...new Array(pad).fill(0), ...ex.inputIds]);
    assert.deepEqual(row(b.labels), [...new Array(pad).fill(IGNORE_INDEX), ...ex.labels]);
    assert.deepEqual(row(b.attentionMask), [...new Array(pad).fill(0), ...new Array(ex.inputIds.length).fill(1)]);
  });
});

test('collate adds no padding when the longest length is already a multiple, and pads right on request', () => {
  const b = collate([example(16, 2, 5), example(9, 2, 50)], { padId: 0, padToMultipleOf: 8, paddingSide: 'right' });
  assert.equal(b.seqLen, 16);
  assert.deepEqual(Array.from(b.attentionMask.subarray(0, 16)), new Array(16).fill(1));
  assert.deepEqual(Array.from(b.inputIds.subarray(16, 32)), [...example(9, 2, 50).inputIds, ...new Array(7).fill(0)]);
  assert.deepEqual(Array.from(b.labels.subarray(16 + 9, 32)), new Array(7).fill(IGNORE_INDEX));
});

test('collate of any lengths gives a multiple-of-8 width with one mask bit per real token', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 70 }), { minLength: 1, maxLength: 9 }), (lengths) => {
      const b = collate(lengths.map((n, i) => example(n, 0, i * 1000 + 3)), { padId: 0, padToMultipleOf: 8, paddingSide: 'left' });
      const longest = Math.max(...lengths);
      assert.equal(b.seqLen % 8, 0);
      assert.ok(b.seqLen >= longest && b.seqLen < longest + 8);
      assert.equal(b.attentionMask.reduce((s, x) => s + x, 0), lengths.reduce((s, x) => s + x, 0));
    }),
  );
});

test('micro-batches cover the order once, all full but the last', () => {
  const order = epochOrder(21, 42, 0);
  const chunks = chunkOrder(order, 8);
  assert.deepEqual(chunks.map((c) => c.length), [8, 8, 5]);
  assert.deepEqual(chunks.flat(), order);
  assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: 21 }, (_, i) => i));
  assert.deepEqual(epochOrder(21, 42, 0), order);
  assert.notDeepEqual(epochOrder(21, 42, 1), order);
});
