import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NearDuplicateIndex, checkGrounding, mentions, ngramSimilarity, parseModelReply, chatCompletionsUrl, normalizeText } from '@huatuo/kg';
import type { KgEntity, KnowledgeSample } from '@huatuo/kg';

const zh = fc.string({ unit: fc.constantFrom(...'高血压糖尿病的药物治疗有哪些症状检查医生您好我最近头痛发热咳嗽'.split('')), minLength: 0, maxLength: 30 });

test('similarity is symmetric, in [0, 1], and 1 for texts equal after normalization', () => {
  fc.assert(
    fc.property(zh, zh, (a, b) => {
      const s = ngramSimilarity(a, b);
      assert.ok(s >= 0 && s <= 1);
      assert.equal(s, ngramSimilarity(b, a));
      assert.equal(ngramSimilarity(a, ` ${a}？！ `), 1);
    }),
  );
});

test('similarity is the Jaccard index of character trigram sets', () => {
  // 高血压怎么治 -> {高血压, 血压怎, 压怎么, 怎么治}; 高血压怎么办 -> {高血压, 血压怎, 压怎么, 怎么办}: 3 shared of 5.
  assert.equal(ngramSimilarity('高血压怎么治？', '高血压怎么办'), 3 / 5);
  assert.equal(ngramSimilarity('高血压', '糖尿病'), 0);
});

test('the near-duplicate index finds exactly the questions a pairwise scan finds', () => {
  fc.assert(
    fc.property(fc.array(zh, { maxLength: 15 }), zh, fc.double({ min: 0, max: 1, noNaN: true }), (held, q, threshold) => {
      const index = new NearDuplicateIndex(threshold);
      for (const h of held) index.add(h);
      const brute = held.some((h) => ngramSimilarity(h, q) > threshold);
      // A text that normalizes to nothing has no n-gram and is never compared.
      if (normalizeText(q) !== '') assert.equal(index.isNearDuplicate(q), brute);
    }),
  );
});

test('replies are parsed from bare JSON, fenced JSON and JSON inside prose, and garbage is rejected', () => {
  const want = { question: '高血压吃什么药？', answer: '高血压可选用氨氯地平。' };
  assert.deepEqual(parseModelReply(JSON.stringify(want)), want);
  assert.deepEqual(parseModelReply('```json\n' + JSON.stringify(want) + '\n```'), want);
  assert.deepEqual(parseModelReply('好的，结果如下：' + JSON.stringify(want) + ' 希望有帮助'), want);
  assert.deepEqual(parseModelReply('{"问题": " 高血压吃什么药？", "回答": "高血压可选用氨氯地平。"}'), want);
  assert.equal(parseModelReply('这不是JSON'), undefined);
  assert.equal(parseModelReply('{"question": "缺少回答"}'), undefined);
  assert.equal(parseModelReply('{"question": 1, "answer": 2}'), undefined);
});

test('grounding requires non-empty fields, the entity name and one sampled value', () => {
  const e: KgEntity = { kind: 'disease', rawClass: '疾病', name: '高血压', attributes: { 药物治疗: ['氨氯地平', '厄贝沙坦'], 典型症状: ['头痛'] } };
  const s: KnowledgeSample = { entity: e, attributes: ['药物治疗'], key: 'k' };
  assert.equal(checkGrounding({ question: '高血压用什么药', answer: '高血压可以用厄贝沙坦。' }, s), undefined);
  assert.equal(checkGrounding({ question: ' ', answer: '高血压可以用厄贝沙坦。' }, s), 'empty-field');
  assert.equal(checkGrounding({ question: 'q', answer: '可以用厄贝沙坦。' }, s), 'missing-entity');
  // 头痛 is in the graph but was not sampled.
  assert.equal(checkGrounding({ question: 'q', answer: '高血压会头痛。' }, s), 'missing-knowledge');
});

test('long values count as mentioned when most of their bigrams appear, short ones only verbatim', () => {
  assert.equal(mentions('可以用氨氯地平', '氨氯地平'), true);
  assert.equal(mentions('可以用氨氯', '氨氯地平'), false);
  const long = '口服，每日一次，早餐前30至60分钟空腹服用';
  assert.equal(mentions('建议每日一次早餐前30至60分钟空腹口服。', long), true);
  assert.equal(mentions('请遵医嘱。', long), false);
});

test('the endpoint URL appends /chat/completions to an API base and keeps a full endpoint', () => {
  assert.equal(chatCompletionsUrl('http://127.0.0.1:8000/v1'), 'http://127.0.0.1:8000/v1/chat/completions');
  assert.equal(chatCompletionsUrl('http://127.0.0.1:8000/v1/'), 'http://127.0.0.1:8000/v1/chat/completions');
  assert.equal(chatCompletionsUrl('https://x.example/v1/chat/completions'), 'https://x.example/v1/chat/completions');
});
