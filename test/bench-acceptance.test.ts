// The budgeted acceptance run (bench/run.ts --acceptance) run for real at toy sizes (--small) on this machine's
// adapter: rows reach the output folder as they are measured, a section that cannot fit in the budget is skipped
// with a message, and a run killed midway or stopped by its budget leaves every row it had measured readable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { readRowsJsonl } from '../bench/report.ts';
import { runScript } from './cli/run-cli.ts';

const RUN = 'bench/run.ts';

/** The `row ...` lines the run printed so far (each printed after its row was written). */
const printedRows = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('row '));

function withOut(fn: (out: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const out = mkdtempSync(join(tmpdir(), 'huatuo-acceptance-'));
    try {
      await fn(out);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  };
}

test('every row is in rows.jsonl and acceptance.md when it is printed, and a section that cannot fit in the budget is skipped with a message', withOut(async (out) => {
  const seen: Array<{ printed: number; written: number; inMarkdown: boolean }> = [];
  const run = await runScript(RUN, ['--acceptance', '--small', '--no-torch', '--budget', '100', '--sections', 'matmul,tests', '--out', out], (stdout) => {
    const printed = printedRows(stdout);
    if (printed.length === 0 || printed.length === seen.at(-1)?.printed) return;
    const last = printed.at(-1)!.split(' | ');
    const written = readRowsJsonl(readFileSync(join(out, 'rows.jsonl'), 'utf8'));
    const md = readFileSync(join(out, 'acceptance.md'), 'utf8');
    seen.push({ printed: printed.length, written: written.length, inMarkdown: md.includes(`| ${last[2]} | ${last[3]} |`) });
  });
  assert.equal(run.code, 0, run.stderr);
  const rows = readRowsJsonl(readFileSync(join(out, 'rows.jsonl'), 'utf8'));
  // Roofline (2), then matmul at 4 shapes in f16 and f32 on an adapter with shader-f16 (else f32 only).
  const matmul = rows.filter((r) => r.section === 'matmul' && r.impl === 'huatuo');
  assert.ok(matmul.length === 8 || matmul.length === 4, `matmul rows: ${matmul.map((r) => `${r.dtype} ${r.shape}`).join(', ')}`);
  assert.equal(new Set(matmul.map((r) => r.shape)).size, 4);
  assert.ok(matmul.every((r) => Number.isFinite(r.ms) && r.ms > 0 && r.gflops! > 0));
  assert.ok(rows.some((r) => r.section === 'roofline' && r.readGbps! > 0));
  // Written as they came: when the first row was printed the file held fewer rows than at the end.
  assert.ok(seen.length >= 3, `saw ${seen.length} states of the output`);
  for (const s of seen) assert.ok(s.written >= s.printed && s.inMarkdown, JSON.stringify(s));
  assert.ok(seen[0]!.written < rows.length, JSON.stringify({ first: seen[0], total: rows.length }));
  // The test suite needs at least 120 s at this scale; about 95 are left after the matmuls.
  const md = readFileSync(join(out, 'acceptance.md'), 'utf8');
  const skip = /tests: skipped \(needs at least ~120 s, \d+ s left of the 100 s budget\)/;
  assert.match(run.stdout, skip);
  assert.match(md, skip);
  assert.ok(!existsSync(join(out, 'tests.log')), 'the skipped suite did not run');
  assert.match(md, /## Targets\n\n- matmul f16/);
}));

test('a run killed with SIGKILL after its first rows leaves them readable in rows.jsonl and acceptance.md', withOut(async (out) => {
  let killedAfter: string[] = [];
  const run = await runScript(RUN, ['--acceptance', '--small', '--no-torch', '--budget', '300', '--sections', 'matmul,lora,decode', '--out', out], (stdout, proc) => {
    const printed = printedRows(stdout);
    if (printed.length >= 4 && killedAfter.length === 0) {
      killedAfter = printed;
      proc.kill('SIGKILL');
    }
  });
  assert.equal(run.code, null, 'killed');
  assert.ok(killedAfter.length >= 4);
  const rows = readRowsJsonl(readFileSync(join(out, 'rows.jsonl'), 'utf8'));
  assert.ok(rows.length >= killedAfter.length, `${rows.length} rows`);
  const md = readFileSync(join(out, 'acceptance.md'), 'utf8');
  for (const line of killedAfter) {
    const [head, impl, dtype, shape] = line.split(' | ') as [string, string, string, string];
    const bench = head.replace(/^row [\w-]+: /, '');
    assert.ok(rows.some((r) => r.bench === bench && r.impl === impl && r.dtype === dtype && r.shape === shape), line);
    assert.ok(md.includes(`| ${impl} | ${dtype} | ${shape} |`), line);
  }
  assert.ok(!rows.some((r) => r.section === 'decode'), 'killed before the decode section');
}));

test('a budget that ends during the run stops it with a message, keeping what it measured', withOut(async (out) => {
  // Node and tsx take longer than 0.5 s to start, so the budget is over by the time it is checked.
  const run = await runScript(RUN, ['--acceptance', '--small', '--no-torch', '--budget', '0.5', '--out', out]);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  const md = readFileSync(join(out, 'acceptance.md'), 'utf8');
  assert.match(md, /the 0\.5 s budget ended during setup: stopped; the rows measured so far are in rows.jsonl/);
  assert.deepEqual(readRowsJsonl(readFileSync(join(out, 'rows.jsonl'), 'utf8')).filter((r) => r.section !== 'roofline'), []);
}));

test('an adapter without 1 GiB bindings is refused at full size, naming --small', async (t) => {
  const info = await initWebGPU();
  if (info.maxStorageBufferBindingSize >= 1 << 30) return t.skip(`${info.adapterName} binds 1 GiB: the full-size run is not refused here`);
  await withOut(async (out) => {
  const run = await runScript(RUN, ['--acceptance', '--no-torch', '--budget', '60', '--out', out]);
  assert.equal(run.code, 1);
  assert.match(run.stdout, /not a GPU-sized 1 GiB; add --small to run the same items at toy sizes/);
  assert.ok(!existsSync(join(out, 'rows.jsonl')));
  })();
});

test('the tests section runs the suite it is given and notes its totals, its output in tests.log', withOut(async (out) => {
  const run = await runScript(RUN, ['--acceptance', '--small', '--no-torch', '--budget', '150', '--sections', 'tests', '--tests', 'test/kernels/params.test.ts', '--out', out]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const md = readFileSync(join(out, 'acceptance.md'), 'utf8');
  const totals = /tests: exit 0; tests (\d+), pass (\d+), fail 0, cancelled 0, skipped 0, todo 0/.exec(md);
  assert.ok(totals !== null && Number(totals[1]) > 0 && totals[1] === totals[2], md);
  assert.match(readFileSync(join(out, 'tests.log'), 'utf8'), new RegExp(`^ℹ pass ${totals[2]}$`, 'm'));
}));
