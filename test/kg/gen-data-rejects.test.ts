// gen-data against a model whose replies fail the checks (a tiny or base model, the wrong --model):
// progress lines on stderr at a bounded rate, a stop after --max-consecutive-rejects rejected replies in a
// row with the counts per reason and the last reply, and the records kept before the stop left in the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MAX_CONSECUTIVE_REJECTS, UnusableRepliesError, buildGenDataCommand, shippedGraphPath } from '@huatuo/kg';
import { startChatServer } from './chat-server.js';
import type { Behaviour } from './chat-server.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'kg-rejects-'));
}

/** The shipped graph's first `n` entities as a --graph file: a few hundred samples, so that a run that never stops still ends. */
function smallGraph(dir: string, n: number): string {
  const file = join(dir, 'graph.jsonl');
  const lines = readFileSync(shippedGraphPath(), 'utf8').split('\n').filter((l) => l.trim() !== '');
  writeFileSync(file, `${lines.slice(0, n).join('\n')}\n`);
  return file;
}

function readRecords(file: string): { instruction: string; output: string; knowledge: Record<string, unknown> }[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { instruction: string; output: string; knowledge: Record<string, unknown> });
}

async function runCommand(args: string[], progressIntervalMs?: number): Promise<{ out: string[]; err: string[]; error: unknown }> {
  const out: string[] = [];
  const err: string[] = [];
  try {
    await buildGenDataCommand({ out: (l) => out.push(l), err: (l) => err.push(l), progressIntervalMs }).parseAsync(args, { from: 'user' });
    return { out, err, error: undefined };
  } catch (error) {
    return { out, err, error };
  }
}

/** The number after `reason` in a message ("invalid-json 7"), 0 when absent. */
function countOf(message: string, reason: string): number {
  return Number(new RegExp(`${reason} (\\d+)`).exec(message)?.[1] ?? 0);
}

test('an endpoint whose replies all fail the checks stops after --max-consecutive-rejects with the counts and the last reply', async () => {
  // Every third reply is not JSON (the server's fixed prose), the others a JSON pair whose answer omits the entity.
  const server = await startChatServer((i) => (i % 3 === 0 ? 'invalid-json' : 'no-entity'));
  try {
    const dir = tmp();
    const file = join(dir, 'kg.jsonl');
    const base = ['--api-url', server.url, '--model', 'tiny', '--graph', smallGraph(dir, 30), '-n', '20', '--out', file, '--concurrency', '3'];
    const { error } = await runCommand([...base, '--max-consecutive-rejects', '12']);
    assert.ok(error instanceof UnusableRepliesError, `stopped with UnusableRepliesError, got ${String(error)}`);
    const requests = server.requests.length;
    assert.ok(requests >= 12 && requests <= 12 + 2, `${requests} requests: the bound and at most the others in flight`);
    const message = error.message;
    assert.match(message, /12 replies in a row of --model tiny failed the checks/);
    assert.match(message, new RegExp(`\\(${requests} requests, 0 records kept; rejected: `));
    assert.equal(countOf(message, 'invalid-json'), server.counts['invalid-json']);
    assert.equal(countOf(message, 'missing-entity'), server.counts['no-entity']);
    assert.match(message, /The last rejected reply \((invalid-json|missing-entity)\): "/);
    assert.match(message, /check that --api-url serves an instruction-following chat model and that --model names it/);
    assert.match(message, /raise --max-consecutive-rejects \(now 12\)/);
    assert.match(message, new RegExp(`0 records are saved in ${file.replaceAll('/', '\\/')}`));
    assert.equal(error.total, 0);
    assert.equal(existsSync(file) ? readRecords(file).length : 0, 0);

    // Without the flag, the default bound stops it.
    const before = server.requests.length;
    const byDefault = await runCommand([...base, '--seed', '7']);
    assert.ok(byDefault.error instanceof UnusableRepliesError, String(byDefault.error));
    const made = server.requests.length - before;
    assert.ok(made >= DEFAULT_MAX_CONSECUTIVE_REJECTS && made <= DEFAULT_MAX_CONSECUTIVE_REJECTS + 2, `${made} requests with the default bound`);
    assert.match(byDefault.error.message, new RegExp(`now ${DEFAULT_MAX_CONSECUTIVE_REJECTS}\\)`));
  } finally {
    await server.close();
  }
});

test('a long rejected reply is quoted by its first 200 characters with its length, beside the first failed request', async () => {
  // A reply as a tiny random model writes it: a long run of tokens, no JSON; the first request is refused as too long.
  const { createServer } = await import('node:http');
  const babble = '血压的的患者，'.repeat(100);
  let posts = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (posts++ === 0) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'the prompt is longer than the context', code: null } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: babble }, finish_reason: 'length' }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    const dir = tmp();
    const { error } = await runCommand(['--api-url', `http://127.0.0.1:${port}/v1`, '--model', 'tiny', '--graph', smallGraph(dir, 10), '-n', '5', '--out', join(dir, 'kg.jsonl'), '--concurrency', '1', '--max-consecutive-rejects', '3']);
    assert.ok(error instanceof UnusableRepliesError, String(error));
    assert.ok(error.message.includes(`(invalid-json): ${JSON.stringify(`${babble.slice(0, 200)}… (${babble.length} characters)`)}`), error.message);
    assert.match(error.message, /\(4 requests, 1 failed, 0 records kept; rejected: invalid-json 3\)/);
    assert.match(error.message, /The first failed request: [^:]+: HTTP 400: the prompt is longer than the context\. /);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a mixed endpoint (one good reply in three) completes, with progress lines on stderr at a bounded rate', async () => {
  const schedule: Behaviour[] = ['invalid-json', 'no-entity', 'ok'];
  const server = await startChatServer((i) => schedule[i % 3] as Behaviour, 15);
  try {
    const dir = tmp();
    const file = join(dir, 'kg.jsonl');
    const started = Date.now();
    const { out, err, error } = await runCommand(
      ['--api-url', server.url, '--model', 'm', '--graph', smallGraph(dir, 60), '-n', '15', '--out', file, '--concurrency', '2', '--max-consecutive-rejects', '8'],
      100,
    );
    const elapsedMs = Date.now() - started;
    assert.equal(error, undefined);
    assert.equal(readRecords(file).length, 15);
    assert.match(out.join('\n'), /holds 15 of 15 records/);
    assert.match(out.join('\n'), new RegExp(`gen-data: ${server.requests.length} requests, `));
    const progress = err.filter((l) => / s: \d+ of 15 records/.test(l));
    assert.ok(progress.length >= 1, `progress lines: ${err.join('\n')}`);
    assert.ok(progress.length <= elapsedMs / 100 + 1, `${progress.length} progress lines in ${elapsedMs} ms, one per 100 ms at most`);
    assert.ok(progress.length < server.requests.length / 3, `${progress.length} progress lines for ${server.requests.length} requests`);
    for (const line of progress) {
      const m = /: (\d+) of 15 records \((\d+) new\), (\d+) requests, (\d+) instances checked, dropped: (.*)$/.exec(line);
      assert.ok(m, line);
      const requests = Number(m[3]);
      assert.ok(requests > 0 && requests <= server.requests.length, line);
      assert.ok(Number(m[1]) <= requests, line);
      const dropped = countOf(line, 'invalid-json') + countOf(line, 'missing-entity') + countOf(line, 'near-duplicate');
      assert.equal(Number(m[1]) + dropped, requests, `every request is a record or a drop by reason: ${line}`);
    }
  } finally {
    await server.close();
  }
});

test('records kept before a stop on rejected replies stay in the file, and a rerun resumes from them', async () => {
  const bad = await startChatServer((i) => (i < 6 ? 'ok' : 'no-entity'));
  const dir = tmp();
  const graph = smallGraph(dir, 30);
  const file = join(dir, 'kg.jsonl');
  const args = (url: string) => ['--api-url', url, '--model', 'm', '--graph', graph, '-n', '20', '--out', file, '--concurrency', '1', '--seed', '3'];
  let kept: string;
  try {
    const { error } = await runCommand([...args(bad.url), '--max-consecutive-rejects', '10']);
    assert.ok(error instanceof UnusableRepliesError, String(error));
    assert.equal(bad.requests.length, 16, 'six good replies, then ten rejected ones');
    assert.equal(error.total, 6);
    assert.match(error.message, /6 records kept; rejected: missing-entity 10\)/);
    assert.match(error.message, /6 records are saved in .* and a rerun with the same --seed resumes/);
    kept = readFileSync(file, 'utf8');
    const records = readRecords(file);
    assert.equal(records.length, 6);
    for (const r of records) assert.ok(r.output.includes(String(r.knowledge['中心词'])));
  } finally {
    await bad.close();
  }
  const good = await startChatServer(() => 'ok');
  try {
    const { out, error } = await runCommand(args(good.url));
    assert.equal(error, undefined);
    assert.match(out.join('\n'), /holds 20 of 20 records \(6 already there, 14 written now/);
    assert.ok(readFileSync(file, 'utf8').startsWith(kept));
    assert.equal(readRecords(file).length, 20);
  } finally {
    await good.close();
  }
});
