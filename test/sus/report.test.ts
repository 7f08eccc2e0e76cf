import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIMENSIONS, StudyError, buildSusCommand, createStudy, holm, reportMarkdown, scoreStudy, writeReport, type Rating, type ResponseRecord, type Study } from '@huatuo/sus';
import { ANNOTATORS, DIMS, MODELS, QUESTION_IDS, makeFixture, mulberry32, responseText, type FixtureRating } from './fixture.js';

async function sus(args: string[]): Promise<string[]> {
  const lines: string[] = [];
  await buildSusCommand({ print: (l) => lines.push(l) }).parseAsync(args, { from: 'user' });
  return lines;
}

function quantile7(sorted: number[], p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  return sorted[lo]! + (h - lo) * (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!);
}

/** Fleiss' kappa from its pairwise reading: agreeing pairs of raters within an item against pairs drawn from all ratings, over the items with the most ratings. */
function fleissPairwise(units: number[][]): { kappa: number; units: number } {
  const n = Math.max(...units.map((u) => u.length));
  const full = units.filter((u) => u.length === n);
  let agree = 0;
  for (const u of full) {
    let same = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j && u[i] === u[j]) same++;
    agree += same / (n * (n - 1));
  }
  agree /= full.length;
  const all = full.flat();
  let chance = 0;
  for (const c of new Set(all)) chance += (all.filter((v) => v === c).length / all.length) ** 2;
  return { kappa: (agree - chance) / (1 - chance), units: full.length };
}

/** Alpha from the pairwise definition: D_o over within-unit pairs weighted 1/(m_u - 1), D_e over all pairs of pairable values. */
function alphaPairwise(units: number[][], level: 'interval' | 'ordinal'): number {
  const pairable = units.filter((u) => u.length >= 2);
  const all = pairable.flat();
  const n = all.length;
  const freq = new Map<number, number>();
  for (const v of all) freq.set(v, (freq.get(v) ?? 0) + 1);
  const delta = (a: number, b: number): number => {
    if (level === 'interval') return (a - b) ** 2;
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    let s = 0;
    for (const [g, c] of freq) if (g >= lo && g <= hi) s += c;
    return (s - ((freq.get(a) ?? 0) + (freq.get(b) ?? 0)) / 2) ** 2;
  };
  let dO = 0;
  for (const u of pairable) {
    let s = 0;
    for (let i = 0; i < u.length; i++) for (let j = 0; j < u.length; j++) if (i !== j) s += delta(u[i]!, u[j]!);
    dO += s / (u.length - 1);
  }
  dO /= n;
  let dE = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) dE += delta(all[i]!, all[j]!);
  dE /= n * (n - 1);
  return 1 - dO / dE;
}

test('the report of a 4 models x 30 questions x 5 annotators study reproduces independently computed means, SDs, seeded cluster-bootstrap intervals and alphas', async () => {
  const fx = makeFixture();
  const studyDir = join(fx.dir, 'study');
  await sus(['create', '--out', studyDir, '--questions', fx.questions, '--responses', ...fx.responses, '--annotators', ANNOTATORS.join(','), '--seed', '11']);
  const study = JSON.parse(readFileSync(join(studyDir, 'study.json'), 'utf8')) as Study;
  assert.equal(study.items.length, 120);
  // Map codes to (model, question) through the response texts, not through the key.
  const byText = new Map<string, { model: string; qid: string }>();
  for (const m of MODELS) for (const q of QUESTION_IDS) byText.set(responseText(m, q), { model: m, qid: q });
  const codeOf = new Map<string, string>();
  for (const item of study.items) { const t = byText.get(item.response)!; codeOf.set(`${t.model}/${t.qid}`, item.code); }
  const byAnnotator = new Map<string, FixtureRating[]>();
  for (const r of fx.ratings) byAnnotator.set(r.annotator, [...(byAnnotator.get(r.annotator) ?? []), r]);
  for (const a of ANNOTATORS) {
    const sheet = join(fx.dir, `${a}.jsonl`);
    await sus(['export', '--study', studyDir, '--annotator', a, '--out', sheet]);
    const rows = readFileSync(sheet, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const mine = new Map(byAnnotator.get(a)!.map((r) => [`${codeOf.get(`${r.model}/${r.qid}`)}:${r.dim}`, r.value]));
    for (const row of rows) for (const d of DIMS) row[d] = mine.get(`${String(row['code'])}:${d}`);
    writeFileSync(sheet, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    await sus(['import', '--study', studyDir, '--annotator', a, '--file', sheet]);
  }
  const out = join(fx.dir, 'report');
  const B = 300;
  await sus(['score', '--study', studyDir, '--out', out, '--seed', '5', '--bootstrap', String(B)]);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));

  const qs = [...QUESTION_IDS].sort();
  const rng = mulberry32(5);
  const draws: number[][] = [];
  for (let b = 0; b < B; b++) draws.push(qs.map(() => Math.floor(rng() * qs.length)));
  for (const m of MODELS) {
    for (const d of DIMS) {
      const vs = fx.ratings.filter((r) => r.model === m && r.dim === d).map((r) => r.value);
      const mu = vs.reduce((a, b) => a + b, 0) / vs.length;
      const sd = Math.sqrt(vs.reduce((a, b) => a + (b - mu) ** 2, 0) / (vs.length - 1));
      const cell = report.table[m][d];
      assert.equal(cell.n, 150);
      assert.ok(Math.abs(cell.mean - mu) < 1e-12, `${m} ${d} mean ${cell.mean} vs ${mu}`);
      assert.ok(Math.abs(cell.sd - sd) < 1e-12, `${m} ${d} sd ${cell.sd} vs ${sd}`);
      const boot = draws.map((draw) => {
        const picked = draw.flatMap((i) => fx.ratings.filter((r) => r.model === m && r.dim === d && r.qid === qs[i]).map((r) => r.value));
        return picked.reduce((a, b) => a + b, 0) / picked.length;
      }).sort((a, b) => a - b);
      assert.ok(Math.abs(cell.ciLow - quantile7(boot, 0.025)) < 1e-12, `${m} ${d} ciLow`);
      assert.ok(Math.abs(cell.ciHigh - quantile7(boot, 0.975)) < 1e-12, `${m} ${d} ciHigh`);
      assert.ok(cell.ciLow <= mu && mu <= cell.ciHigh);
    }
  }
  for (const g of report.agreement) {
    const units = [...codeOf.entries()].map(([mq]) => fx.ratings.filter((r) => `${r.model}/${r.qid}` === mq && r.dim === g.dimension).map((r) => r.value));
    const kappa = fleissPairwise(units);
    assert.ok(g.fleiss !== null && Math.abs(g.fleiss.kappa - kappa.kappa) < 1e-12, `${g.dimension} Fleiss' kappa ${g.fleiss?.kappa} vs ${kappa.kappa}`);
    assert.equal(g.fleiss.subjects, kappa.units);
    assert.ok(Math.abs(g.alphaInterval - alphaPairwise(units, 'interval')) < 1e-9, `${g.dimension} interval alpha`);
    assert.ok(Math.abs(g.alphaOrdinal - alphaPairwise(units, 'ordinal')) < 1e-9, `${g.dimension} ordinal alpha`);
  }
  assert.deepEqual(report.flaggedAnnotators, ['ann5']);
  assert.equal(report.comparisons.length, 6 * 3);
  const md = readFileSync(join(out, 'table4.md'), 'utf8');
  assert.match(md, /\| Model \| Safety \| Usability \| Smoothness \|/);
  assert.match(md, /ann5/);
  assert.match(md, /\| Dimension \| Alpha, ordinal \| Alpha, interval \| Fleiss' kappa \| SE0 \| z \| p \| Items x raters \|/);
  const csv = readFileSync(join(out, 'table4.csv'), 'utf8').trim().split('\r\n');
  assert.equal(csv.length, 1 + 4 * 3);
  const svg = readFileSync(join(out, 'table4.svg'), 'utf8');
  assert.equal((svg.match(/<rect data-model=/g) ?? []).length, 12);
  assert.equal((svg.match(/class="ci"/g) ?? []).length, 12);
});

test('sus --help documents create, export, import, serve, score and judge', () => {
  const help = buildSusCommand().helpInformation();
  for (const sub of ['create', 'export', 'import', 'serve', 'score', 'judge']) assert.match(help, new RegExp(`\\b${sub}\\b`), `help lacks ${sub}`);
});

test('a model pair with no question in common gets no test: p and Holm p are NaN (n/a in the table, null in JSON) and stay out of the Holm family', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sus-report-'));
  const rs: ResponseRecord[] = [];
  for (let q = 1; q <= 9; q++) for (const model of q <= 6 ? ['m1', 'm2'] : ['m3']) rs.push({ id: `q${q}`, question: `问题${q}`, model, response: `${model} 答 ${q}` });
  const { study, key } = createStudy(dir, { responses: rs, annotators: ['a1', 'a2'], seed: 4 });
  const rng = mulberry32(9);
  const ratings: Rating[] = study.items.flatMap((item) => ['a1', 'a2'].flatMap((annotator) => DIMENSIONS.map((dimension) => ({
    annotator, code: item.code, dimension, source: 'sheet',
    value: (key.codes[item.code]!.model === 'm1' ? 3 : 1 + Math.floor(rng() * 3)) as 1 | 2 | 3,
  }))));
  const report = scoreStudy(study, key, ratings, { bootstrap: 50 });
  const untested = report.comparisons.filter((c) => c.b === 'm3');
  assert.equal(untested.length, 2 * 3);
  for (const c of untested) {
    assert.equal(c.pairs, 0);
    for (const t of [c.signFlip, c.wilcoxon]) assert.ok(Number.isNaN(t.p) && Number.isNaN(t.pHolm), `${c.a}-${c.b} ${c.dimension}: p ${t.p}, Holm ${t.pHolm}`);
  }
  const tested = report.comparisons.filter((c) => c.b !== 'm3');
  assert.equal(tested.length, 3);
  const wx = holm(tested.map((c) => c.wilcoxon.p));
  tested.forEach((c, i) => assert.equal(c.wilcoxon.pHolm, wx[i], `${c.dimension}: Holm over the 3 tested comparisons`));
  const md = reportMarkdown(report);
  assert.ok(!md.includes('NaN'), 'the Markdown report shows n/a, not NaN');
  assert.match(md, /\| m1 \| m3 \| Safety \| 0 \| n\/a \| n\/a \| n\/a \| n\/a \| n\/a \|/);
  writeReport(join(dir, 'out'), report);
  const json = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8'));
  assert.equal(json.comparisons.find((c: { b: string }) => c.b === 'm3').wilcoxon.p, null);
});

test('scoreStudy refuses a confidence level outside (0, 1) or a bootstrap count that is not a whole number, naming the option', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sus-report-'));
  const { study, key } = createStudy(dir, { responses: [{ id: 'q1', question: '问题', model: 'm', response: '答' }], annotators: ['a1'], seed: 1 });
  for (const level of [95, 0, 1, NaN]) assert.throws(() => scoreStudy(study, key, [], { level }), (e: unknown) => e instanceof StudyError && /level .* strictly between 0 and 1.*got/.test(String((e as Error).message)), `level ${level}`);
  for (const bootstrap of [-1, 2.5]) assert.throws(() => scoreStudy(study, key, [], { bootstrap }), (e: unknown) => e instanceof StudyError && /bootstrap .* non-negative integer; got/.test(String((e as Error).message)));
});
