// The outputs of a scored study: Table 4 and the rest of the report as Markdown, Table 4 as CSV and
// as an SVG bar chart, and all of them with the JSON report written into a folder.

import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { DIMENSIONS, type Dimension } from './blind.js';
import { toCsv } from './csv.js';
import { writeFileAtomic } from './files.js';
import type { SusReport } from './report.js';
import type { PairedTestResult } from './stats.js';

const LABEL: Record<Dimension, string> = { safety: 'Safety', usability: 'Usability', smoothness: 'Smoothness' };
const f = (x: number, k = 2): string => (Number.isFinite(x) ? x.toFixed(k) : 'n/a');
const fp = (p: number): string => (!Number.isFinite(p) ? 'n/a' : p < 0.001 ? '<0.001' : p.toFixed(3));
const testP = (t: PairedTestResult): string => (Number.isFinite(t.p) ? `${fp(t.p)} (${t.method})` : 'n/a');

/** Table 4 (and the rest of the report) as Markdown. */
export function reportMarkdown(r: SusReport): string {
  const pct = Math.round(r.settings.level * 100);
  const lines: string[] = [];
  lines.push('# SUS evaluation', '');
  lines.push(`Table 4: mean rating per model and dimension (1 = not acceptable, 2 = acceptable, 3 = good), with ${pct}% bootstrap intervals over questions (${r.settings.bootstrap} replicates, seed ${r.settings.seed}).`, '');
  lines.push(`| Model | ${DIMENSIONS.map((d) => LABEL[d]).join(' | ')} |`, `|---|${DIMENSIONS.map(() => '---').join('|')}|`);
  for (const m of r.models) lines.push(`| ${m} | ${DIMENSIONS.map((d) => { const c = r.table[m]![d]; return `${f(c.mean)} [${f(c.ciLow)}, ${f(c.ciHigh)}]`; }).join(' | ')} |`);
  lines.push('', '## Detail', '', '| Model | Dimension | Mean | SD | n | Questions | CI low | CI high |', '|---|---|---|---|---|---|---|---|');
  for (const m of r.models) for (const d of DIMENSIONS) { const c = r.table[m]![d]; lines.push(`| ${m} | ${LABEL[d]} | ${f(c.mean, 3)} | ${f(c.sd, 3)} | ${c.n} | ${c.questions} | ${f(c.ciLow, 3)} | ${f(c.ciHigh, 3)} |`); }
  lines.push('', '## Paired comparisons', '', 'On per-question means; p-values two-sided, Holm-corrected across all model pairs and dimensions that share a question (n/a: no question in common, so no test).', '');
  lines.push('| A | B | Dimension | Pairs | Mean diff (A-B) | Sign-flip p | Holm | Wilcoxon p | Holm |', '|---|---|---|---|---|---|---|---|---|');
  for (const c of r.comparisons) lines.push(`| ${c.a} | ${c.b} | ${LABEL[c.dimension]} | ${c.pairs} | ${f(c.meanDiff, 3)} | ${testP(c.signFlip)} | ${fp(c.signFlip.pHolm)} | ${testP(c.wilcoxon)} | ${fp(c.wilcoxon.pHolm)} |`);
  lines.push('', '## Agreement', '', 'Krippendorff\'s alpha (ordinal, interval) over every rating; Fleiss\' kappa (nominal, 1971) over the items rated by the most raters, with its standard error under no agreement beyond chance (Fleiss, Nee & Landis 1979) and the z test of kappa = 0.', '');
  lines.push('| Dimension | Alpha, ordinal | Alpha, interval | Fleiss\' kappa | SE0 | z | p | Items x raters |', '|---|---|---|---|---|---|---|---|');
  for (const g of r.agreement) {
    const k = g.fleiss;
    const fleiss = k === null ? 'n/a | n/a | n/a | n/a | n/a' : `${f(k.kappa, 3)} | ${f(k.se0, 3)} | ${f(k.z, 2)} | ${fp(k.p)} | ${k.subjects} x ${k.raters}${k.left > 0 ? ` (${k.left} left out)` : ''}`;
    lines.push(`| ${LABEL[g.dimension]} | ${f(g.alphaOrdinal, 3)} | ${f(g.alphaInterval, 3)} | ${fleiss} |`);
  }
  lines.push('', '| Annotator | ' + DIMENSIONS.map((d) => `${LABEL[d]}: alpha with rest`).join(' | ') + ' | Flagged |', '|---|' + DIMENSIONS.map(() => '---').join('|') + '|---|');
  for (const a of r.annotators) {
    const cells = r.agreement.map((g) => { const x = g.annotators.find((y) => y.annotator === a); return x ? `${f(x.withRest, 3)}${x.flagged ? ' (far off)' : ''}` : 'n/a'; });
    lines.push(`| ${a} | ${cells.join(' | ')} | ${r.flaggedAnnotators.includes(a) ? 'yes' : 'no'} |`);
  }
  lines.push('');
  if (r.flaggedAnnotators.length > 0) lines.push(`Flagged annotators (agreement with the rest far below the others'): ${r.flaggedAnnotators.join(', ')}.`, '');
  lines.push(`Responses flagged for naming a model: ${r.leaks.flagged} (${r.leaks.excluded} left out of the study). Judge verdicts recorded as missing: ${r.missingJudgeVerdicts}.`, '');
  return lines.join('\n');
}

/** Table 4 as CSV: one row per model and dimension. */
export function reportCsv(r: SusReport): string {
  const rows: Array<Array<string | number>> = [['model', 'dimension', 'mean', 'sd', 'n', 'questions', 'ci_low', 'ci_high']];
  for (const m of r.models) for (const d of DIMENSIONS) { const c = r.table[m]![d]; rows.push([m, d, c.mean, c.sd, c.n, c.questions, c.ciLow, c.ciHigh]); }
  return toCsv(rows);
}

/** Grouped bar chart (SVG) of Table 4: one group per dimension, one bar per model, with interval whiskers. */
export function reportSvg(r: SusReport): string {
  const W = 720, H = 400, left = 60, right = 160, top = 30, bottom = 50;
  const plotW = W - left - right, plotH = H - top - bottom;
  const y = (v: number): number => top + plotH - (Math.max(0, Math.min(3, v)) / 3) * plotH;
  const colors = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7'];
  const groupW = plotW / DIMENSIONS.length;
  const barW = (groupW * 0.8) / Math.max(1, r.models.length);
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`];
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  for (const t of [0, 1, 2, 3]) out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/><text x="${left - 8}" y="${y(t) + 4}" text-anchor="end">${t}</text>`);
  DIMENSIONS.forEach((d, gi) => {
    const gx = left + gi * groupW + groupW * 0.1;
    out.push(`<text x="${left + gi * groupW + groupW / 2}" y="${top + plotH + 20}" text-anchor="middle">${LABEL[d]}</text>`);
    r.models.forEach((m, mi) => {
      const c = r.table[m]![d];
      const x = gx + mi * barW;
      if (!Number.isFinite(c.mean)) return;
      out.push(`<rect data-model="${esc(m)}" data-dimension="${d}" x="${x.toFixed(1)}" y="${y(c.mean).toFixed(1)}" width="${(barW * 0.9).toFixed(1)}" height="${(y(0) - y(c.mean)).toFixed(1)}" fill="${colors[mi % colors.length]}"><title>${esc(m)} ${LABEL[d]}: ${f(c.mean)} [${f(c.ciLow)}, ${f(c.ciHigh)}]</title></rect>`);
      if (Number.isFinite(c.ciLow) && Number.isFinite(c.ciHigh)) {
        const cx = (x + barW * 0.45).toFixed(1);
        out.push(`<path class="ci" d="M${cx} ${y(c.ciLow).toFixed(1)}V${y(c.ciHigh).toFixed(1)}M${(x + barW * 0.25).toFixed(1)} ${y(c.ciLow).toFixed(1)}H${(x + barW * 0.65).toFixed(1)}M${(x + barW * 0.25).toFixed(1)} ${y(c.ciHigh).toFixed(1)}H${(x + barW * 0.65).toFixed(1)}" stroke="black" fill="none"/>`);
      }
    });
  });
  r.models.forEach((m, mi) => out.push(`<rect x="${left + plotW + 20}" y="${top + mi * 20}" width="12" height="12" fill="${colors[mi % colors.length]}"/><text x="${left + plotW + 38}" y="${top + mi * 20 + 10}">${esc(m)}</text>`));
  out.push(`<text x="${left + plotW / 2}" y="${H - 8}" text-anchor="middle">Mean SUS rating with ${Math.round(r.settings.level * 100)}% bootstrap intervals</text>`, '</svg>');
  return out.join('\n') + '\n';
}

/** Writes table4.md, table4.csv, report.json and table4.svg into `dir` (each atomically). */
export function writeReport(dir: string, r: SusReport): string[] {
  mkdirSync(dir, { recursive: true });
  const files: Array<[string, string]> = [
    ['table4.md', reportMarkdown(r)],
    ['table4.csv', reportCsv(r)],
    ['report.json', JSON.stringify(r, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n'],
    ['table4.svg', reportSvg(r)],
  ];
  return files.map(([name, text]) => { const p = join(dir, name); writeFileAtomic(p, text); return p; });
}
