import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGraph, loadShippedGraph, parseGraph, shippedGraphPath, GraphFormatError } from '@huatuo/kg';

/** The shipped graph read line by line with JSON.parse only, independent of the loader. */
function rawShipped(): Record<string, unknown>[] {
  return readFileSync(shippedGraphPath(), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('the shipped graph has at least 150 entities spread over diseases, drugs and symptoms', () => {
  const raw = rawShipped();
  assert.ok(raw.length >= 150, `got ${raw.length} records`);
  const count = (c: string) => raw.filter((r) => r['class'] === c).length;
  assert.ok(count('疾病') >= 50, `diseases: ${count('疾病')}`);
  assert.ok(count('药物') >= 50, `drugs: ${count('药物')}`);
  assert.ok(count('症状') >= 30, `symptoms: ${count('症状')}`);
});

test('every drug named in a disease treatment list exists as a drug entity', () => {
  const raw = rawShipped();
  const drugs = new Set(raw.filter((r) => r['class'] === '药物').map((r) => r['中心词']));
  const missing: string[] = [];
  for (const r of raw) {
    for (const d of (r['药物治疗'] as string[] | undefined) ?? []) if (!drugs.has(d)) missing.push(`${String(r['中心词'])} -> ${d}`);
  }
  assert.deepEqual(missing, []);
});

test('the loader reads every shipped record without skipping or ignoring anything', async () => {
  const graph = await loadShippedGraph();
  assert.equal(graph.entities.length, rawShipped().length);
  assert.deepEqual(graph.skipped, []);
  assert.deepEqual(graph.warnings, []);
  const names = graph.entities.map((e) => `${e.kind}:${e.name}`);
  assert.equal(new Set(names).size, names.length);
  for (const e of graph.entities) {
    for (const [attr, values] of Object.entries(e.attributes)) {
      assert.ok(values.length > 0 && values.every((v) => v.trim() === v && v !== ''), `${e.name}.${attr}`);
    }
  }
});

test('invalid records are skipped with a reason naming the problem and the rest are loaded', () => {
  const lines = [
    JSON.stringify({ class: '百种常见病', 中心词: '肝癌', 药物治疗: ['瑞格非尼', '索拉非尼'], 发病部位: ['肝脏'] }),
    '{not json',
    JSON.stringify({ class: '器械', 中心词: '听诊器', 用途: ['听诊'] }),
    JSON.stringify({ class: '疾病', 中心词: '', 典型症状: ['咳嗽'] }),
    JSON.stringify({ class: '疾病', 中心词: '空病', 典型症状: [] }),
    JSON.stringify({ class: '疾病', 中心词: '肝癌', 典型症状: ['乏力'] }),
    JSON.stringify({ class: '症状', 中心词: '咳嗽', 可能病因: ['感冒', 3], 伴随症状: { a: 1 } }),
    JSON.stringify([1, 2]),
    JSON.stringify({ title: 'x' }),
  ];
  const g = parseGraph(lines.join('\n'), 'mixed.jsonl');
  assert.deepEqual(g.entities.map((e) => [e.kind, e.name]), [['disease', '肝癌'], ['symptom', '咳嗽']]);
  const reasons = new Map(g.skipped.map((s) => [s.record, s.reason]));
  assert.deepEqual([...reasons.keys()], [2, 3, 4, 5, 6, 8, 9]);
  assert.match(reasons.get(2) ?? '', /invalid JSON/);
  assert.match(reasons.get(3) ?? '', /"class" is "器械"/);
  assert.match(reasons.get(4) ?? '', /中心词/);
  assert.match(reasons.get(5) ?? '', /no attribute/);
  assert.match(reasons.get(6) ?? '', /duplicate of line 1/);
  assert.match(reasons.get(8) ?? '', /JSON object/);
  assert.match(reasons.get(9) ?? '', /neither a CMeKG record/);
  assert.deepEqual(g.entities[1]?.attributes, { 可能病因: ['感冒', '3'] });
  assert.equal(g.warnings.length, 1);
  assert.match(g.warnings[0] ?? '', /伴随症状/);
});

test('QASystemOnMedicalKG disease records are read as diseases with mapped attributes', () => {
  const rec = {
    _id: { $oid: '5bb578b6831b973a137e3ee6' },
    name: '肺泡蛋白质沉积症',
    desc: '肺泡蛋白质沉积症是一种原因未明的少见疾病。',
    category: ['疾病百科', '内科', '呼吸内科'],
    symptom: ['紫绀', '胸痛', '呼吸困难'],
    acompany: ['多重肺部感染'],
    cure_department: ['内科', '呼吸内科'],
    cure_way: ['支气管肺泡灌洗'],
    check: ['胸部CT检查'],
    common_drug: ['乙酰半胱氨酸'],
    recommand_drug: ['乙酰半胱氨酸泡腾片'],
    do_eat: ['鸡蛋'],
    not_eat: ['辣椒'],
    cause: '病因未明。',
    prevent: '避免接触粉尘。',
    cure_lasttime: '约3个月',
    cured_prob: '约40%',
    easy_get: '无特定人群',
    unexpected_field: 'x',
  };
  const g = parseGraph(JSON.stringify(rec), 'medical.json');
  assert.equal(g.entities.length, 1);
  const e = g.entities[0];
  assert.equal(e?.kind, 'disease');
  assert.equal(e?.name, '肺泡蛋白质沉积症');
  assert.deepEqual(e?.attributes['典型症状'], ['紫绀', '胸痛', '呼吸困难']);
  assert.deepEqual(e?.attributes['药物治疗'], ['乙酰半胱氨酸']);
  assert.deepEqual(e?.attributes['所属类别'], ['内科', '呼吸内科']);
  assert.deepEqual(e?.attributes['治愈率'], ['约40%']);
  assert.equal(Object.keys(e?.attributes ?? {}).length, 16);
  assert.equal(g.warnings.length, 1);
  assert.match(g.warnings[0] ?? '', /unexpected_field/);
});

test('a JSON array file is read like JSONL and a file with no usable record is an error naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-graph-'));
  const arr = join(dir, 'a.json');
  writeFileSync(arr, JSON.stringify([{ class: '药物', 中心词: '阿司匹林', 禁忌: ['出血倾向'] }, { class: '?', 中心词: 'x', a: ['b'] }]));
  const g = await loadGraph(arr);
  assert.equal(g.entities.length, 1);
  assert.deepEqual(g.skipped.map((s) => s.record), [2]);
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"title": 1}\n');
  await assert.rejects(loadGraph(bad), (e: unknown) => e instanceof GraphFormatError && e.message.includes(bad) && /no usable entity/.test(e.message));
  await assert.rejects(loadGraph(join(dir, 'missing.jsonl')), GraphFormatError);
});
