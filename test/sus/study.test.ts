import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  StudyFormatError, RatingStore, createStudy, exportSheet, extendStudy, loadStudy, orderFor, parseSheet, parseCsv, readQuestions, readResponses, buildSusCommand,
  type ResponseRecord,
} from '@huatuo/sus';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'sus-study-'));
const responses = (models: string[], n: number): ResponseRecord[] =>
  models.flatMap((model, k) => Array.from({ length: n }, (_, i) => ({ id: `q${i + 1}`, question: `问题${i + 1}`, model, response: `答案 ${i + 1}/${k}, "引号", 逗号\n第二行` })));

test('annotators see no model names, the key maps every code, and each annotator has a seeded order of their own', () => {
  const dir = tmp();
  const r = createStudy(dir, { responses: responses(['alpha-7b', 'beta-13b'], 12), annotators: ['a1', 'a2'], seed: 3 });
  const visible = readFileSync(join(dir, 'study.json'), 'utf8');
  assert.ok(!visible.includes('alpha-7b') && !visible.includes('beta-13b'));
  const { study, key, tokens } = loadStudy(dir);
  assert.equal(study.items.length, 24);
  for (const item of study.items) assert.ok(key.codes[item.code], item.code);
  assert.equal(new Set(study.items.map((i) => i.code)).size, 24);
  assert.notEqual(tokens['a1'], tokens['a2']);
  const o1 = orderFor(study, 'a1').map((i) => i.code);
  const o2 = orderFor(study, 'a2').map((i) => i.code);
  assert.notDeepEqual(o1, o2);
  assert.deepEqual([...o1].sort(), [...o2].sort());
  assert.equal(r.study.annotators.find((a) => a.name === 'a1')!.seed, study.annotators.find((a) => a.name === 'a1')!.seed);
});

test('adding a model and an annotator later keeps every existing code, token, seed and relative order', () => {
  const dir = tmp();
  createStudy(dir, { responses: responses(['alpha'], 15), annotators: ['a1', 'a2'], seed: 9 });
  const before = loadStudy(dir);
  const orderBefore = orderFor(before.study, 'a1').map((i) => i.code);
  extendStudy(dir, { responses: responses(['alpha', 'gamma'], 15).filter((r) => r.model === 'gamma'), annotators: ['a3'] });
  const after = loadStudy(dir);
  assert.equal(after.study.items.length, 30);
  assert.equal(after.tokens['a1'], before.tokens['a1']);
  assert.deepEqual(after.study.annotators.slice(0, 2), before.study.annotators);
  for (const [code, v] of Object.entries(before.key.codes)) assert.deepEqual(after.key.codes[code], v);
  const orderAfter = orderFor(after.study, 'a1').map((i) => i.code).filter((c) => orderBefore.includes(c));
  assert.deepEqual(orderAfter, orderBefore);
  assert.throws(() => extendStudy(dir, { responses: responses(['alpha'], 1), annotators: [] }), /already has a response/);
});

test('responses that name a model are flagged and left out unless kept', () => {
  const rs = responses(['x', 'y'], 3);
  rs[1]!.response = '我是华驼，一个医学模型。';
  rs[4]!.response = 'As an LLaMA-based assistant, I suggest rest.';
  const dir = tmp();
  const r = createStudy(dir, { responses: rs, annotators: ['a1'], seed: 1 });
  assert.equal(r.flagged.length, 2);
  assert.deepEqual(r.flagged.map((f) => f.words), [['华驼'], ['LLaMA']]);
  assert.equal(r.study.items.length, 4);
  const kept = createStudy(tmp(), { responses: rs, annotators: ['a1'], seed: 1, keepLeaks: true });
  assert.equal(kept.study.items.length, 6);
  assert.equal(kept.study.leaks.filter((l) => !l.excluded).length, 2);
});

test('generate output ({question, answer}) is read with the model from MODEL=FILE and ids from the questions file', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'q.jsonl'), '{"instruction": "发烧怎么办？", "input": ""}\n{"id": "k2", "question": "咳嗽怎么办？"}\n');
  writeFileSync(join(dir, 'gen.jsonl'), '{"question": "咳嗽怎么办？", "answer": "多喝水。"}\n{"question": "发烧怎么办？", "answer": "物理降温。"}\n');
  const qs = readQuestions(join(dir, 'q.jsonl'));
  assert.deepEqual(qs.map((q) => q.id), ['q1', 'k2']);
  const rs = readResponses(join(dir, 'gen.jsonl'), { model: 'tuned', questions: qs });
  assert.deepEqual(rs.map((r) => [r.id, r.model, r.response]), [['k2', 'tuned', '多喝水。'], ['q1', 'tuned', '物理降温。']]);
  writeFileSync(join(dir, 'bad.jsonl'), '{"question": "头痛？", "answer": "休息。"}\n');
  assert.throws(() => readResponses(join(dir, 'bad.jsonl'), { questions: qs }), (e: unknown) => e instanceof StudyFormatError && e.row === 1);
  const lines: string[] = [];
  await buildSusCommand({ print: (l) => lines.push(l) }).parseAsync(['create', '--out', join(dir, 's'), '--questions', join(dir, 'q.jsonl'), '--responses', `tuned=${join(dir, 'gen.jsonl')}`, '--annotators', 'a1', '--seed', '2'], { from: 'user' });
  assert.equal(loadStudy(join(dir, 's')).study.items.length, 2);
});

test('the rating store runs in WAL mode with synchronous FULL and upserts on annotator, item and dimension', () => {
  const dir = tmp();
  const store = RatingStore.open(join(dir, 'r.sqlite'));
  assert.deepEqual(store.settings(), { journalMode: 'wal', synchronous: 2 });
  store.rate({ annotator: 'a', code: 'R1', dimension: 'safety', value: 1, source: 'web' });
  store.rate({ annotator: 'a', code: 'R1', dimension: 'safety', value: 3, source: 'web' });
  store.rate({ annotator: 'b', code: 'R1', dimension: 'safety', value: 2, source: 'web' });
  assert.deepEqual(store.list().map((r) => [r.annotator, r.value]), [['a', 3], ['b', 2]]);
  assert.throws(() => store.rate({ annotator: 'a', code: 'R1', dimension: 'safety', value: 4 as 1, source: 'web' }), /1, 2 or 3/);
  store.close();
});

test('a CSV sheet with commas, quotes and line breaks round-trips and imports into the store', () => {
  const dir = tmp();
  const { study } = createStudy(dir, { responses: responses(['m1', 'm2'], 4), annotators: ['a1'], seed: 4 });
  const csv = exportSheet(study, 'a1', 'csv');
  const { records } = parseCsv(csv);
  assert.equal(records.length, 9);
  assert.equal(records[1]![4], orderFor(study, 'a1')[0]!.response);
  const filled = records.map((r, i) => (i === 0 ? r : [...r.slice(0, 5), '3', '2', i % 2 ? '1' : '']));
  const text = filled.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\n');
  const ratings = parseSheet(text, 'csv', 'a1.csv', study, 'a1');
  assert.equal(ratings.length, 8 * 2 + 4);
  const store = RatingStore.open(join(dir, 'ratings.sqlite'));
  store.rateMany(ratings);
  assert.equal(store.list('a1').length, 20);
  const again = exportSheet(study, 'a1', 'jsonl', store.list('a1'));
  assert.equal(JSON.parse(again.split('\n')[0]!).safety, 3);
  store.close();
});

test('bad sheets are rejected with the row number and the reason, and nothing already saved is lost', async () => {
  const dir = tmp();
  const { study } = createStudy(dir, { responses: responses(['m1'], 3), annotators: ['a1', 'a2'], seed: 5 });
  const sheet = (rows: Array<Record<string, unknown>>): string => rows.map((r) => JSON.stringify(r)).join('\n');
  const good = JSON.parse(`[${exportSheet(study, 'a1', 'jsonl').trim().split('\n').join(',')}]`) as Array<Record<string, unknown>>;
  for (const r of good) Object.assign(r, { safety: 2, usability: 2, smoothness: 2 });
  const f = join(dir, 'a1.jsonl');
  writeFileSync(f, sheet(good));
  const run = (args: string[]) => buildSusCommand({ print: () => {} }).parseAsync(args, { from: 'user' });
  await run(['import', '--study', dir, '--annotator', 'a1', '--file', f]);
  const cases: Array<[Array<Record<string, unknown>>, RegExp]> = [
    [good.map((r, i) => (i === 1 ? { ...r, usability: 4 } : r)), /row 2: usability of item \w+ must be 1, 2 or 3.*got "4"/],
    [good.map((r, i) => (i === 2 ? { ...r, code: 'RZZZZZZZZZZ' } : r)), /row 3: unknown code "RZZZZZZZZZZ"/],
    [[...good, good[0]!], /row 4: item \w+ appears again \(first on row 1\)/],
    [good.slice(1), /1 of the annotator's 3 items are missing/],
    [good.map((r, i) => (i === 0 ? { ...r, safety: 'good' } : r)), /row 1: safety .* got "good"/],
    [good.map((r) => ({ ...r, annotator: 'a2' })), /row 1: row belongs to annotator "a2"/],
  ];
  for (const [rows, re] of cases) {
    writeFileSync(f, sheet(rows.map((r) => ({ ...r, smoothness: 1 }))));
    await assert.rejects(run(['import', '--study', dir, '--annotator', 'a1', '--file', f]), (e: unknown) => e instanceof StudyFormatError && re.test(e.message), String(re));
  }
  writeFileSync(join(dir, 'broken.csv'), 'code,safety,usability,smoothness\nR1,"2,1,1\n');
  await assert.rejects(run(['import', '--study', dir, '--annotator', 'a1', '--file', join(dir, 'broken.csv')]), /broken\.csv, row 2: a quoted field is not closed/);
  const store = RatingStore.open(join(dir, 'ratings.sqlite'));
  assert.equal(store.list('a1').length, 9);
  assert.ok(store.list('a1').every((r) => r.value === 2));
  store.close();
});

test('key.json and tokens.json are written readable by their owner only (0600), on create and on extend, and create says where they are', async () => {
  const dir = tmp();
  const lines: string[] = [];
  const questions = join(dir, 'q.jsonl');
  const answers = join(dir, 'r.jsonl');
  writeFileSync(questions, '{"id": "q1", "question": "问题1"}\n');
  writeFileSync(answers, '{"id": "q1", "question": "问题1", "model": "m1", "response": "答案"}\n');
  const study = join(dir, 'study');
  await buildSusCommand({ print: (l) => lines.push(l) }).parseAsync(['create', '--out', study, '--questions', questions, '--responses', answers, '--annotators', 'a1'], { from: 'user' });
  const mode = (f: string): number => statSync(join(study, f)).mode & 0o777;
  assert.equal(mode('key.json'), 0o600);
  assert.equal(mode('tokens.json'), 0o600);
  assert.equal(mode('study.json'), 0o666 & ~process.umask(), 'what annotators see keeps the umask\'s mode');
  const said = lines.join('\n');
  assert.ok(said.includes(join(study, 'key.json')) && said.includes(join(study, 'tokens.json')) && said.includes('0600'), said);
  chmodSync(join(study, 'tokens.json'), 0o644);
  extendStudy(study, { responses: [], annotators: ['a2'] });
  assert.equal(mode('tokens.json'), 0o600, 'an older study\'s secrets are closed when it is extended');
});
