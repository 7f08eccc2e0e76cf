import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, ChatClient, ExhaustedError, OptionError, buildGenDataCommand, generateData, loadShippedGraph, shippedGraphPath } from '@huatuo/kg';
import type { KgEntity } from '@huatuo/kg';
import { startChatServer } from './chat-server.js';
import type { Behaviour } from './chat-server.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const childScript = fileURLToPath(new URL('./gen-data-child.ts', import.meta.url));

interface Line {
  instruction: string;
  input: string;
  output: string;
  knowledge: Record<string, string | string[]>;
  source: string;
}

function readLines(file: string): Line[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}

function keyOf(k: Record<string, unknown>): string {
  const attrs = Object.keys(k).filter((a) => a !== 'class' && a !== '中心词').sort();
  return `${String(k['class'])}|${String(k['中心词'])}|${attrs.join('+')}`;
}

/** The shipped graph as raw records keyed by class and name, read without the loader. */
function rawGraph(): Map<string, Record<string, string[] | string>> {
  const m = new Map<string, Record<string, string[] | string>>();
  for (const l of readFileSync(shippedGraphPath(), 'utf8').split('\n')) {
    if (l.trim() === '') continue;
    const r = JSON.parse(l) as Record<string, string[] | string>;
    m.set(`${String(r['class'])}|${String(r['中心词'])}`, r);
  }
  return m;
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'kg-gen-'));
}

async function runCommand(args: string[]): Promise<{ out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  await buildGenDataCommand({ out: (l) => out.push(l), err: (l) => err.push(l) }).parseAsync(args, { from: 'user' });
  return { out, err };
}

test('offline gen-data writes 500 distinct templated records whose answers list exactly the graph values', async () => {
  const file = join(tmp(), 'kg.jsonl');
  const { out } = await runCommand(['--offline', '-n', '500', '--out', file]);
  const lines = readLines(file);
  assert.equal(lines.length, 500);
  assert.match(out.join('\n'), /holds 500 of 500 records/);
  const graph = rawGraph();
  const keys = new Set<string>();
  const classes = new Map<string, number>();
  for (const r of lines) {
    assert.deepEqual(Object.keys(r).sort(), ['input', 'instruction', 'knowledge', 'output', 'source']);
    assert.equal(r.input, '');
    assert.equal(r.source, 'templated');
    const name = String(r.knowledge['中心词']);
    const entity = graph.get(`${String(r.knowledge['class'])}|${name}`);
    assert.ok(entity, `knowledge names an entity of the graph: ${name}`);
    assert.ok(r.output.includes(name));
    for (const [attr, values] of Object.entries(r.knowledge)) {
      if (attr === 'class' || attr === '中心词') continue;
      assert.deepEqual(values, entity[attr], `${name}.${attr} is copied from the graph`);
      for (const v of values as string[]) assert.ok(r.output.includes(v), `${name}: answer lists ${v}`);
    }
    keys.add(keyOf(r.knowledge));
    classes.set(String(r.knowledge['class']), (classes.get(String(r.knowledge['class'])) ?? 0) + 1);
  }
  assert.equal(keys.size, 500);
  assert.equal(new Set(lines.map((l) => l.instruction)).size, 500);
  const perClass = ['疾病', '药物', '症状'].map((c) => classes.get(c) ?? 0);
  // Classes take turns in the sampler; only dropped near-duplicates can unbalance the kept records.
  const dropped = Number(/near-duplicate (\d+)/.exec(out.join('\n'))?.[1] ?? 0);
  assert.ok(Math.max(...perClass) - Math.min(...perClass) <= 1 + dropped, `class counts ${perClass.join(',')}, ${dropped} dropped`);
});

test('records have the llama_data.json training fields with the same types, plus provenance', (t) => {
  const llama = join(repoRoot, '../shared/data/huatuo/llama_data.json');
  if (!existsSync(llama)) {
    t.skip(`${llama} not present`);
    return;
  }
  const first = JSON.parse(readFileSync(llama, 'utf8').split('\n')[0] as string) as Record<string, unknown>;
  const file = join(tmp(), 'kg.jsonl');
  return runCommand(['--offline', '-n', '5', '--out', file]).then(() => {
    for (const r of readLines(file) as unknown as Record<string, unknown>[]) {
      for (const [k, v] of Object.entries(first)) assert.equal(typeof r[k], typeof v, `field ${k}`);
      assert.equal(r['input'], first['input']);
    }
  });
});

test('an offline rerun keeps existing lines, adds only new samples, and repairs a cut-off last line', async () => {
  const file = join(tmp(), 'kg.jsonl');
  await runCommand(['--offline', '-n', '100', '--out', file]);
  const before = readFileSync(file, 'utf8');
  const again = await runCommand(['--offline', '-n', '100', '--out', file]);
  assert.equal(readFileSync(file, 'utf8'), before);
  assert.match(again.out.join('\n'), /100 already there, 0 written now/);
  appendFileSync(file, '{"instruction": "半行');
  await runCommand(['--offline', '-n', '160', '--out', file]);
  const after = readFileSync(file, 'utf8');
  assert.ok(after.startsWith(before));
  const lines = readLines(file);
  assert.equal(lines.length, 160);
  assert.equal(new Set(lines.map((l) => keyOf(l.knowledge))).size, 160);
});

test('flags that contradict each other or lack a value are rejected before anything is written', async () => {
  const file = join(tmp(), 'kg.jsonl');
  await assert.rejects(runCommand(['--offline', '--api-url', 'http://127.0.0.1:1/v1', '-n', '3', '--out', file]), OptionError);
  await assert.rejects(runCommand(['-n', '3', '--out', file]), OptionError);
  await assert.rejects(runCommand(['--api-url', 'http://127.0.0.1:1/v1', '-n', '3', '--out', file]), /--model/);
  await assert.rejects(runCommand(['--offline', '-n', 'x', '--out', file]), /-n\/--count/);
  await assert.rejects(runCommand(['--offline', '-n', '3', '--out', file, '--attributes-per-sample', '3-1']), /attributes-per-sample/);
  assert.equal(existsSync(file), false);
});

test('a graph too small for the count writes every pair it has and then reports exhaustion', async () => {
  const dir = tmp();
  const graph = join(dir, 'g.jsonl');
  appendFileSync(graph, JSON.stringify({ class: '疾病', 中心词: '高血压', 药物治疗: ['氨氯地平'], 就诊科室: ['心血管内科'] }) + '\n');
  const file = join(dir, 'kg.jsonl');
  await assert.rejects(runCommand(['--offline', '--graph', graph, '-n', '10', '--out', file]), (e: unknown) => e instanceof ExhaustedError && e.total === 3);
  assert.equal(readLines(file).length, 3);
});

test('--help documents every flag', () => {
  const help = buildGenDataCommand().helpInformation();
  for (const flag of ['--graph', '--offline', '--count', '--out', '--seed', '--api-url', '--model', '--api-key-env', '--concurrency', '--timeout-ms', '--max-retries', '--similarity-threshold', '--attributes-per-sample', '--max-consecutive-rejects']) {
    assert.ok(help.includes(flag), flag);
  }
});

function hashOf(text: string): number {
  let h = 7;
  for (const c of text) h = (h * 31 + (c.codePointAt(0) ?? 0)) >>> 0;
  return h;
}

test('LLM generation retries 429 and 500, drops invalid JSON and ungrounded answers, and keeps provenance', async () => {
  // First attempt per sample: by a hash of the knowledge, fail with 429 or 500 (the retry succeeds),
  // reply with non-JSON, or answer without the entity name; later attempts answer properly.
  const attempts = new Map<string, number>();
  const server = await startChatServer((_i, k) => {
    const key = keyOf(k);
    const n = attempts.get(key) ?? 0;
    attempts.set(key, n + 1);
    if (n > 0) return 'ok';
    const schedule: Behaviour[] = ['429', '500', 'invalid-json', 'no-entity', 'ok', 'ok', 'ok'];
    return schedule[hashOf(key) % schedule.length] as Behaviour;
  });
  try {
    const { entities } = await loadShippedGraph();
    const out = join(tmp(), 'llm.jsonl');
    const client = new ChatClient({ apiUrl: server.url, model: 'test-model', apiKey: undefined, timeoutMs: 5000, maxRetries: 3, retryBaseMs: 1, temperature: 0.7 });
    const summary = await generateData({ entities, out, count: 60, seed: 3, minAttributes: 1, maxAttributes: 2, similarityThreshold: 0.85, llm: { client, model: 'test-model' }, concurrency: 4 });
    const lines = readLines(out);
    assert.equal(lines.length, 60);
    assert.equal(summary.total, 60);
    assert.ok(server.counts['429'] > 0 && server.counts['500'] > 0 && server.counts['invalid-json'] > 0 && server.counts['no-entity'] > 0, JSON.stringify(server.counts));
    assert.equal(summary.dropped['request-failed'], 0);
    assert.equal(summary.dropped['invalid-json'], server.counts['invalid-json']);
    assert.equal(summary.dropped['missing-entity'], server.counts['no-entity']);
    assert.equal(summary.attempted, 60 + server.counts['invalid-json'] + server.counts['no-entity'] + summary.dropped['near-duplicate']);
    assert.ok(server.requests.every((r) => r.model === 'test-model'));
    const graph = rawGraph();
    assert.equal(new Set(lines.map((l) => keyOf(l.knowledge))).size, 60);
    for (const l of lines) {
      assert.equal(l.source, 'llm:test-model');
      const name = String(l.knowledge['中心词']);
      assert.ok(l.output.includes(name));
      const entity = graph.get(`${String(l.knowledge['class'])}|${name}`);
      assert.ok(entity);
      for (const [a, v] of Object.entries(l.knowledge)) if (a !== 'class' && a !== '中心词') assert.deepEqual(v, entity[a]);
    }
  } finally {
    await server.close();
  }
});

test('gen-data through the command sends the key from the named variable and records the model', async () => {
  const server = await startChatServer(() => 'ok');
  process.env['KG_TEST_API_KEY'] = 'sk-local-test';
  try {
    const file = join(tmp(), 'cmd.jsonl');
    const { out } = await runCommand(['--api-url', server.url, '--model', 'm1', '--api-key-env', 'KG_TEST_API_KEY', '-n', '9', '--out', file, '--concurrency', '3', '--seed', '5']);
    assert.match(out.join('\n'), /holds 9 of 9 records/);
    const lines = readLines(file);
    assert.equal(lines.length, 9);
    assert.ok(lines.every((l) => l.source === 'llm:m1'));
    assert.equal(server.requests.length, 9);
    assert.ok(server.requests.every((r) => r.authorization === 'Bearer sk-local-test'));
  } finally {
    delete process.env['KG_TEST_API_KEY'];
    await server.close();
  }
});

test('a request that hangs times out and is dropped, and an endpoint that always hangs aborts the run', async () => {
  const symptomHangs = await startChatServer((_i, k) => (k['class'] === '症状' ? 'hang' : 'ok'));
  const { entities } = await loadShippedGraph();
  try {
    const out = join(tmp(), 'hang.jsonl');
    const client = new ChatClient({ apiUrl: symptomHangs.url, model: 'm', apiKey: undefined, timeoutMs: 150, maxRetries: 1, retryBaseMs: 1, temperature: 0.7 });
    const summary = await generateData({ entities, out, count: 12, seed: 1, minAttributes: 1, maxAttributes: 1, similarityThreshold: 0.85, llm: { client, model: 'm' }, concurrency: 4, maxConsecutiveFailures: 100 });
    const lines = readLines(out);
    assert.equal(lines.length, 12);
    assert.ok(lines.every((l) => l.knowledge['class'] !== '症状'));
    assert.ok(summary.dropped['request-failed'] > 0);
    assert.equal(symptomHangs.counts.hang, 2 * summary.dropped['request-failed']);
    assert.match(summary.requestErrors[0] ?? '', /timed out after 150 ms/);
  } finally {
    await symptomHangs.close();
  }
  const allHang = await startChatServer(() => 'hang');
  try {
    const out = join(tmp(), 'dead.jsonl');
    const client = new ChatClient({ apiUrl: allHang.url, model: 'm', apiKey: undefined, timeoutMs: 100, maxRetries: 0, retryBaseMs: 1, temperature: 0.7 });
    const entitiesSmall: KgEntity[] = entities.slice(0, 20);
    await assert.rejects(
      generateData({ entities: entitiesSmall, out, count: 5, seed: 1, minAttributes: 1, maxAttributes: 1, similarityThreshold: 0.85, llm: { client, model: 'm' }, concurrency: 2, maxConsecutiveFailures: 4 }),
      (e: unknown) => e instanceof ApiError && /4 requests in a row failed/.test(e.message) && /timed out/.test(e.message),
    );
  } finally {
    await allHang.close();
  }
});

function spawnChild(args: string[]): { done: Promise<number | null>; kill: () => void } {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', childScript, ...args], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  done.then((code) => {
    if (code !== 0 && code !== null) process.stderr.write(stderr);
  });
  return { done, kill: () => child.kill('SIGKILL') };
}

test('a gen-data run killed with SIGKILL mid-way completes on rerun without duplicates or lost lines', async () => {
  const server = await startChatServer(() => 'ok', 20);
  try {
    const file = join(tmp(), 'killed.jsonl');
    const args = ['--api-url', server.url, '--model', 'm', '-n', '80', '--out', file, '--concurrency', '4', '--seed', '11'];
    const first = spawnChild(args);
    let killed = false;
    while (!killed) {
      const n = existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 1 : 0;
      if (n >= 15) {
        first.kill();
        killed = true;
      } else await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(await first.done, null, 'the first run was killed, not finished');
    const partial = readFileSync(file, 'utf8');
    const partialLines = partial.split('\n').filter((l) => l !== '').length;
    assert.ok(partialLines < 80, `killed with ${partialLines} lines`);
    const second = spawnChild(args);
    assert.equal(await second.done, 0);
    const final = readFileSync(file, 'utf8');
    assert.ok(final.startsWith(partial.slice(0, partial.lastIndexOf('\n') + 1)), 'lines written before the kill are kept');
    const lines = readLines(file);
    assert.equal(lines.length, 80);
    assert.equal(new Set(lines.map((l) => keyOf(l.knowledge))).size, 80);
    assert.equal(new Set(lines.map((l) => l.instruction)).size, 80);
  } finally {
    await server.close();
  }
});
