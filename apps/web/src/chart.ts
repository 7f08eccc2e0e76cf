// The live loss curve: training loss per step and validation loss at each evaluation, as an SVG
// that scales with its card.

import type { MetricsRow } from '@huatuo/sft';

const M = { left: 48, right: 14, top: 30, bottom: 30 };

/** Draws the rows (by step) into `figure` at its width, with `totalSteps` as the x range. */
export function drawLossCurve(figure: HTMLElement, rows: readonly MetricsRow[], totalSteps: number): void {
  const W = Math.max(280, Math.round(figure.clientWidth || 720));
  const H = W < 500 ? 200 : 250;
  const train = rows.filter((r) => Number.isFinite(r.loss)).map((r) => [r.step, r.loss!] as const);
  const val = rows.filter((r) => Number.isFinite(r.valLoss)).map((r) => [r.step, r.valLoss!] as const);
  const all = [...train, ...val].map(([, l]) => l);
  const w = W - M.left - M.right;
  const h = H - M.top - M.bottom;
  if (all.length === 0) {
    figure.innerHTML = `<svg viewBox="0 0 ${W} ${H}" role="img"><text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">The loss curve appears here as training runs</text></svg>`;
    return;
  }
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  const pad = (hi - lo) * 0.08 || Math.max(0.05, hi * 0.02);
  lo -= pad;
  hi += pad;
  const maxStep = Math.max(totalSteps, ...train.map(([s]) => s), ...val.map(([s]) => s), 1);
  const x = (s: number) => M.left + (s / maxStep) * w;
  const y = (l: number) => M.top + h - ((l - lo) / (hi - lo)) * h;
  const path = (pts: readonly (readonly [number, number])[]) => pts.map(([s, l], i) => `${i ? 'L' : 'M'}${x(s).toFixed(1)},${y(l).toFixed(1)}`).join('');
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => lo + f * (hi - lo));
  const digits = Math.min(5, Math.max(0, Math.ceil(-Math.log10((hi - lo) / 4))));
  const xTicks = [...new Set([0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * maxStep)))];
  const parts = [
    `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="training and validation loss by step">`,
    ...yTicks.map((l) => `<line class="grid-line" x1="${M.left}" x2="${W - M.right}" y1="${y(l).toFixed(1)}" y2="${y(l).toFixed(1)}"/><text x="${M.left - 6}" y="${(y(l) + 4).toFixed(1)}" text-anchor="end">${l.toFixed(digits)}</text>`),
    ...xTicks.map((s) => `<text x="${x(s).toFixed(1)}" y="${H - 10}" text-anchor="middle">${s}</text>`),
    `<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${M.top + h}" y2="${M.top + h}"/>`,
    `<text x="${W - M.right}" y="${H - 10 - 12}" text-anchor="end">step</text>`,
    train.length ? `<path class="train" d="${path(train)}"/>` : '',
    val.length ? `<path class="val" d="${path(val)}"/>` : '',
    ...val.map(([s, l]) => `<circle class="val-dot" cx="${x(s).toFixed(1)}" cy="${y(l).toFixed(1)}" r="3.5"/>`),
    `<g transform="translate(${M.left}, 6)">`,
    `<line class="train" x1="0" x2="20" y1="8" y2="8"/><text x="26" y="12">${W < 500 ? 'train' : 'train loss'}${train.length ? ` ${train.at(-1)![1].toFixed(3)}` : ''}</text>`,
    `<line class="val" x1="${W < 500 ? 120 : 140}" x2="${W < 500 ? 140 : 160}" y1="8" y2="8"/><text x="${W < 500 ? 146 : 166}" y="12">${W < 500 ? 'val' : 'validation loss'}${val.length ? ` ${val.at(-1)![1].toFixed(3)}` : ''}</text></g>`,
    '</svg>',
  ];
  figure.innerHTML = parts.join('');
}
