import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RatingStore, buildSusCommand, createStudy, loadStudy, parseVerdict, type ResponseRecord } from '@huatuo/sus';

/**
 * A small OpenAI-compatible chat-completions server on 127.0.0.1. It scores from the answer
 * text: "好" answers get 3s, others 2s; answers containing "乱码" always get prose (never
 * parseable); answers containing "一次" get prose on the first request only.
 */
async function startFakeLlm(): Promise<{ url: string; requests: Array<{ auth: string | undefined; body: any }>; close: () => Promise<void> }> {
  const requests: Array<{ auth: string | undefined; body: any }> = [];
  const seen = new Map<string, number>();
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const body = JSON.parse(raw);
      requests.push({ auth: req.headers.authorization, body });
      const user: string = body.messages.find((m: { role: string }) => m.role === 'user').content;
      const count = (seen.get(user) ?? 0) + 1;
      seen.set(user, count);
      const s = user.includes('好') ? 3 : 2;
      const verdict = JSON.stringify({ safety: { score: s, reason: '无风险' }, usability: { score: s, reason: '专业' }, smoothness: { score: 3, reason: '通顺' } });
      const content = user.includes('乱码') || (user.includes('一次') && count === 1) ? 'I think it is fine overall.' : `\`\`\`json\n${verdict}\n\`\`\``;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

test('verdict parsing accepts a fenced JSON object with scores 1-3 and reasons, and rejects anything else', () => {
  const ok = '```json\n{"safety":{"score":1,"reason":"a"},"usability":{"score":2,"reason":"b"},"smoothness":{"score":3,"reason":"c"}}\n```';
  assert.deepEqual(parseVerdict(ok)?.usability, { score: 2, reason: 'b' });
  assert.equal(parseVerdict(ok.replace('"score":3', '"score":4')), null);
  assert.equal(parseVerdict(ok.replace('"score":1', '"score":"1"')), null);
  assert.equal(parseVerdict(ok.replace(',"reason":"c"', '')), null);
  assert.equal(parseVerdict('safety 3, usability 2'), null);
});

test('the judge rates each response on its own, retries unparseable replies, records missing verdicts, and joins the agreement report as an annotator', async () => {
  const llm = await startFakeLlm();
  const dir = mkdtempSync(join(tmpdir(), 'sus-judge-'));
  const answers = ['回答很好。', '一般的回答。', '乱码回答。', '一次失败后很好。'];
  const rs: ResponseRecord[] = ['m1', 'm2'].flatMap((model) => answers.map((a, i) => ({ id: `q${i}`, question: `问题${i}`, model, response: `${model === 'm1' ? '甲：' : '乙：'}${a}` })));
  createStudy(dir, { responses: rs, annotators: ['h1', 'h2'], seed: 2 });
  const { study } = loadStudy(dir);
  const lines: string[] = [];
  process.env['SUS_TEST_JUDGE_KEY'] = 'sk-local-test';
  try {
    await buildSusCommand({ print: (l) => lines.push(l) }).parseAsync(
      ['judge', '--study', dir, '--judge-url', llm.url, '--judge-model', 'local-judge', '--judge-key-env', 'SUS_TEST_JUDGE_KEY', '--retries', '2'], { from: 'user' });
  } finally {
    delete process.env['SUS_TEST_JUDGE_KEY'];
    await llm.close();
  }
  // 8 items; the 2 "乱码" items take 3 attempts each, the 2 "一次" items take 2.
  assert.equal(llm.requests.length, 4 + 2 * 3 + 2 * 2);
  for (const r of llm.requests) {
    assert.equal(r.auth, 'Bearer sk-local-test');
    assert.equal(r.body.model, 'local-judge');
    const user = r.body.messages.filter((m: { role: string }) => m.role === 'user');
    assert.equal(user.length, 1);
    assert.equal(study.items.filter((i) => user[0].content.includes(i.response)).length, 1, 'one response per request');
  }
  const store = RatingStore.open(join(dir, 'ratings.sqlite'));
  const judged = store.list('judge:local-judge');
  assert.equal(judged.length, 8 * 3);
  const byCode = new Map(study.items.map((i) => [i.code, i.response]));
  for (const r of judged) {
    const text = byCode.get(r.code)!;
    if (text.includes('乱码')) assert.equal(r.value, null);
    else if (r.dimension === 'smoothness') assert.equal(r.value, 3);
    else assert.equal(r.value, text.includes('好') ? 3 : 2);
  }
  assert.equal(lines.filter((l) => l.includes('recorded as missing')).length, 2);
  // Humans rate everything 3 except safety of the "一般" answers (2), like the judge.
  for (const h of ['h1', 'h2']) {
    for (const item of study.items) {
      for (const d of ['safety', 'usability', 'smoothness'] as const) {
        store.rate({ annotator: h, code: item.code, dimension: d, value: d !== 'smoothness' && item.response.includes('一般') ? 2 : 3, source: 'web' });
      }
    }
  }
  store.close();
  const out = join(dir, 'report');
  await buildSusCommand({ print: () => {} }).parseAsync(['score', '--study', dir, '--out', out, '--bootstrap', '50'], { from: 'user' });
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  assert.ok(report.annotators.includes('judge:local-judge'));
  assert.deepEqual(report.tableAnnotators, ['h1', 'h2']);
  assert.equal(report.missingJudgeVerdicts, 6);
  assert.equal(report.table.m1.safety.n, 8);
  const safety = report.agreement.find((g: { dimension: string }) => g.dimension === 'safety');
  assert.ok(safety.annotators.some((a: { annotator: string }) => a.annotator === 'judge:local-judge'));
  assert.equal(safety.alphaInterval, 1);
});

test('a judge endpoint answering 401 stops the run with a clear error instead of guessing', async () => {
  const server = createServer((_req, res) => { res.writeHead(401, { 'content-type': 'application/json' }); res.end('{"error":"bad key"}'); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const dir = mkdtempSync(join(tmpdir(), 'sus-judge-'));
  createStudy(dir, { responses: [{ id: 'q', question: '问', model: 'm', response: '答' }], annotators: [], seed: 1 });
  try {
    await assert.rejects(
      buildSusCommand({ print: () => {} }).parseAsync(['judge', '--study', dir, '--judge-url', `http://127.0.0.1:${port}/v1`, '--judge-model', 'x'], { from: 'user' }),
      /HTTP 401.*check --judge-url/,
    );
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  const store = RatingStore.open(join(dir, 'ratings.sqlite'));
  assert.equal(store.list().length, 0);
  store.close();
});
