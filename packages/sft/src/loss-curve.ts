// The loss curve of a run as a standalone SVG: training and validation loss against the optimizer
// step, on axes with ticks and labels, a y-axis from zero, a legend and the relative change.
import type { MetricsRow } from './metrics.js';

/** Options of {@link lossCurveSvg}. */
export interface LossCurveOptions {
  width?: number;
  height?: number;
  /** First line of the heading. */
  title?: string;
}

type Point = readonly [step: number, loss: number];

/** About `count` round tick values (1, 2 or 5 times a power of ten apart) from 0 to at least `max`. */
export function niceTicks(max: number, count: number, integer = false): number[] {
  const target = max > 0 ? max / count : 1;
  const power = 10 ** Math.floor(Math.log10(target));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= target) ?? 10 * power;
  if (integer) step = Math.max(1, Math.round(step));
  const ticks: number[] = [];
  for (let i = 0; ; i++) {
    const v = i * step;
    ticks.push(Number(v.toPrecision(12)));
    if (v >= max) break;
  }
  return ticks;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function tickLabel(v: number, step: number): string {
  const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
  return v.toFixed(decimals);
}

/** "training 10.397 → 4.102 (−60.5 %)": first and last value of a series and the relative change. */
function change(name: string, pts: readonly Point[]): string | null {
  if (pts.length === 0) return null;
  const first = pts[0]![1];
  const last = pts[pts.length - 1]![1];
  if (pts.length === 1) return `${name} ${last.toFixed(3)}`;
  const rel = first !== 0 ? ((last - first) / Math.abs(first)) * 100 : 0;
  const digits = Math.abs(rel) < 1 ? 2 : 1;
  const sign = rel < 0 ? '−' : '+';
  return `${name} ${first.toFixed(3)} → ${last.toFixed(3)} (${sign}${Math.abs(rel).toFixed(digits)} %)`;
}

/**
 * The loss curve as an SVG document: training loss as a solid blue line, validation loss as a
 * dashed orange line with a dot per evaluation. The y-axis starts at zero, so a change of a
 * fraction of a percent stays a flat line; the heading states each series' relative change.
 * @example writeFileSync('loss.svg', lossCurveSvg([{ step: 1, loss: 10.4 }, { step: 2, loss: 9.1 }, { step: 2, valLoss: 9.3 }]));
 */
export function lossCurveSvg(history: readonly MetricsRow[], options: LossCurveOptions = {}): string {
  const width = options.width ?? 640;
  const height = options.height ?? 380;
  const train: Point[] = history.filter((r) => typeof r.loss === 'number' && Number.isFinite(r.loss)).map((r) => [r.step, r.loss!]);
  const val: Point[] = history.filter((r) => typeof r.valLoss === 'number' && Number.isFinite(r.valLoss)).map((r) => [r.step, r.valLoss!]);
  const all = [...train, ...val];
  const margin = { left: 64, right: 20, top: 52, bottom: 48 };
  const w = width - margin.left - margin.right;
  const h = height - margin.top - margin.bottom;
  const xTicks = niceTicks(Math.max(1, ...all.map(([s]) => s)), 6, true);
  const yTicks = niceTicks(Math.max(0, ...all.map(([, l]) => l)), 5);
  const xMax = xTicks[xTicks.length - 1]!;
  const yMax = yTicks[yTicks.length - 1]! || 1;
  const yStep = yTicks[1] ?? 1;
  const x = (s: number) => (margin.left + (s / xMax) * w).toFixed(1);
  const y = (l: number) => (margin.top + h - (l / yMax) * h).toFixed(1);
  const path = (pts: readonly Point[]) => pts.map(([s, l], i) => `${i ? 'L' : 'M'}${x(s)},${y(l)}`).join(' ');
  const bottom = margin.top + h;
  const summary = [change('training', train), change('validation', val)].filter((s): s is string => s !== null).join(';  ');

  const grid = [
    ...yTicks.map((v) => `<line x1="${margin.left}" y1="${y(v)}" x2="${margin.left + w}" y2="${y(v)}" stroke="#e6e6e6"/>`),
    ...yTicks.map((v) => `<line x1="${margin.left - 4}" y1="${y(v)}" x2="${margin.left}" y2="${y(v)}" stroke="#444"/>`),
    ...yTicks.map((v) => `<text x="${margin.left - 7}" y="${y(v)}" text-anchor="end" dominant-baseline="middle">${tickLabel(v, yStep)}</text>`),
    ...xTicks.map((s) => `<line x1="${x(s)}" y1="${bottom}" x2="${x(s)}" y2="${bottom + 4}" stroke="#444"/>`),
    ...xTicks.map((s) => `<text x="${x(s)}" y="${bottom + 16}" text-anchor="middle">${s}</text>`),
  ];
  const legendX = margin.left + w - 150;
  const legendY = margin.top + 8;
  const legend: string[] = [];
  if (train.length) {
    legend.push(`<line x1="${legendX + 8}" y1="${legendY + 12}" x2="${legendX + 32}" y2="${legendY + 12}" stroke="#1f77b4" stroke-width="2"/>`);
    legend.push(`<text x="${legendX + 38}" y="${legendY + 12}" dominant-baseline="middle">training loss</text>`);
  }
  if (val.length) {
    const ly = legendY + (train.length ? 30 : 12);
    legend.push(`<line x1="${legendX + 8}" y1="${ly}" x2="${legendX + 32}" y2="${ly}" stroke="#ff7f0e" stroke-width="2" stroke-dasharray="5,3"/>`);
    legend.push(`<circle cx="${legendX + 20}" cy="${ly}" r="3" fill="#ff7f0e"/>`);
    legend.push(`<text x="${legendX + 38}" y="${ly}" dominant-baseline="middle">validation loss</text>`);
  }
  const legendBox = legend.length
    ? `<rect x="${legendX}" y="${legendY}" width="142" height="${train.length && val.length ? 42 : 24}" fill="white" stroke="#bbb"/>`
    : '';

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${margin.left}" y="18" font-size="13">${escapeXml(options.title ?? 'Loss by optimizer step')}</text>`,
    `<text x="${margin.left}" y="36" fill="#444">${escapeXml(summary || 'no losses logged yet')}</text>`,
    ...grid,
    `<line x1="${margin.left}" y1="${bottom}" x2="${margin.left + w}" y2="${bottom}" stroke="#444"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${bottom}" stroke="#444"/>`,
    `<text x="${margin.left + w / 2}" y="${height - 10}" text-anchor="middle">optimizer step</text>`,
    `<text transform="translate(16 ${margin.top + h / 2}) rotate(-90)" text-anchor="middle">loss (cross-entropy, nats)</text>`,
    train.length ? `<path d="${path(train)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>` : '',
    val.length ? `<path d="${path(val)}" fill="none" stroke="#ff7f0e" stroke-width="1.5" stroke-dasharray="5,3"/>` : '',
    ...val.map(([s, l]) => `<circle cx="${x(s)}" cy="${y(l)}" r="2.5" fill="#ff7f0e"/>`),
    legendBox,
    ...legend,
    '</svg>',
    '',
  ]
    .filter((line) => line !== '')
    .join('\n')
    .concat('\n');
}
