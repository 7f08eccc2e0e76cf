// Training metrics in the run's files: one JSON line per logged step or evaluation (metrics.jsonl), and a
// loss curve (SVG) of training and validation loss against the step.
import { runFiles as files } from './run-files.js';

/** One line of metrics.jsonl. */
export interface MetricsRow {
  step: number;
  loss?: number;
  valLoss?: number;
  lr?: number;
  tokensPerSec?: number;
  gpuBytes?: number;
}

/** Appends one row to metrics.jsonl. */
export async function appendMetrics(path: string, row: MetricsRow): Promise<void> {
  await files.appendText(path, `${JSON.stringify(row)}\n`);
}

/** Replaces metrics.jsonl with `rows` (atomically), e.g. a resumed checkpoint's history. */
export async function writeMetrics(path: string, rows: readonly MetricsRow[]): Promise<void> {
  await files.writeFile(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** The loss curve as an SVG document (training loss in blue, validation loss in orange). */
export function lossCurveSvg(history: readonly MetricsRow[], width = 640, height = 360): string {
  const train = history.filter((r) => typeof r.loss === 'number' && Number.isFinite(r.loss)).map((r) => [r.step, r.loss!] as const);
  const val = history.filter((r) => typeof r.valLoss === 'number' && Number.isFinite(r.valLoss)).map((r) => [r.step, r.valLoss!] as const);
  const all = [...train, ...val];
  const margin = { left: 56, right: 16, top: 28, bottom: 40 };
  const w = width - margin.left - margin.right;
  const h = height - margin.top - margin.bottom;
  const maxStep = Math.max(1, ...all.map(([s]) => s));
  const losses = all.map(([, l]) => l);
  const lo = losses.length ? Math.min(...losses) : 0;
  const hi = losses.length ? Math.max(...losses) : 1;
  const span = hi - lo || 1;
  const x = (s: number) => margin.left + (s / maxStep) * w;
  const y = (l: number) => margin.top + h - ((l - lo) / span) * h;
  const path = (pts: readonly (readonly [number, number])[]) =>
    pts.map(([s, l], i) => `${i ? 'L' : 'M'}${x(s).toFixed(1)},${y(l).toFixed(1)}`).join(' ');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const l = lo + f * span;
    return `<text x="${margin.left - 6}" y="${y(l).toFixed(1)}" text-anchor="end" dominant-baseline="middle">${l.toFixed(3)}</text>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${margin.left}" y="16" font-size="13">Loss by optimizer step</text>`,
    `<line x1="${margin.left}" y1="${margin.top + h}" x2="${margin.left + w}" y2="${margin.top + h}" stroke="#444"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + h}" stroke="#444"/>`,
    ...ticks,
    `<text x="${margin.left + w}" y="${height - 8}" text-anchor="end">step ${maxStep}</text>`,
    train.length ? `<path d="${path(train)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>` : '',
    val.length ? `<path d="${path(val)}" fill="none" stroke="#ff7f0e" stroke-width="1.5"/>` : '',
    ...val.map(([s, l]) => `<circle cx="${x(s).toFixed(1)}" cy="${y(l).toFixed(1)}" r="2.5" fill="#ff7f0e"/>`),
    `<text x="${margin.left + w - 150}" y="${margin.top + 12}" fill="#1f77b4">train loss</text>`,
    `<text x="${margin.left + w - 70}" y="${margin.top + 12}" fill="#ff7f0e">val loss</text>`,
    '</svg>',
    '',
  ].join('\n');
}

/** Writes the loss curve atomically. */
export async function writeLossCurve(path: string, history: readonly MetricsRow[]): Promise<void> {
  await files.writeFile(path, lossCurveSvg(history));
}
