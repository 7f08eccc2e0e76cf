// loss.svg as a reader needs it: ticks and labels on both axes, a y-axis from zero (a 0.2 % change
// stays flat) with the relative change in the heading, and a legend telling the two series apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lossCurveSvg, type MetricsRow } from '@huatuo/sft';

/** 36 steps whose training loss falls by 0.2 % (10.397 to 10.376), evaluated every 8 steps. */
function flatRun(): MetricsRow[] {
  const rows: MetricsRow[] = [];
  for (let step = 2; step <= 36; step += 2) {
    rows.push({ step, loss: 10.397 - (0.021 * (step - 2)) / 34 });
    if (step % 8 === 0 || step === 36) rows.push({ step, valLoss: 10.394 - (0.007 * step) / 36 });
  }
  return rows;
}

function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
}

/** Numeric labels drawn right-aligned (the y-axis ticks) or centred (the x-axis ticks). */
function tickLabels(svg: string, axis: 'x' | 'y'): number[] {
  const anchor = axis === 'y' ? 'end' : 'middle';
  return [...svg.matchAll(new RegExp(`<text[^>]*text-anchor="${anchor}"[^>]*>([\\d.]+)</text>`, 'g'))].map((m) => Number(m[1]));
}

/** The y coordinates of a path's points. */
function pathYs(svg: string, stroke: string): number[] {
  const d = new RegExp(`<path d="([^"]+)"[^>]*stroke="${stroke}"`).exec(svg);
  assert.ok(d, `a path stroked ${stroke}`);
  return [...d[1]!.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
}

test('both axes carry round tick labels and a name: optimizer step and loss', () => {
  const labels = texts(lossCurveSvg(flatRun()));
  assert.ok(labels.includes('optimizer step'), 'x-axis label');
  assert.ok(labels.some((t) => /^loss/.test(t)), 'y-axis label');
  const svg = lossCurveSvg(flatRun());
  assert.deepEqual(tickLabels(svg, 'x'), [0, 10, 20, 30, 40]);
  assert.deepEqual(tickLabels(svg, 'y'), [0, 5, 10, 15]);
});

test('the y-axis starts at zero, so a 0.2 % change is a flat line and the heading states it', () => {
  const svg = lossCurveSvg(flatRun());
  const ys = pathYs(svg, '#1f77b4');
  const axis = /<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="\1" stroke="#444"\/>/.exec(svg);
  assert.ok(axis, 'x-axis line');
  const plotHeight = Number(axis[1]) - 52;
  const drop = Math.max(...ys) - Math.min(...ys);
  assert.ok(drop < 0.01 * plotHeight, `a 0.2 % fall spans ${drop.toFixed(1)} of ${plotHeight} px`);
  assert.ok(texts(svg).some((t) => t.includes('training 10.397 → 10.376 (−0.20 %)')), texts(svg).join(' | '));
});

test('a legend names training and validation loss, drawn in different colours and dash patterns', () => {
  const svg = lossCurveSvg(flatRun());
  const labels = texts(svg);
  assert.ok(labels.includes('training loss') && labels.includes('validation loss'), labels.join(' | '));
  const train = /<path d="[^"]+" fill="none" stroke="#1f77b4"([^>]*)>/.exec(svg)![1]!;
  const val = /<path d="[^"]+" fill="none" stroke="#ff7f0e"([^>]*)>/.exec(svg)![1]!;
  assert.ok(!train.includes('dasharray') && val.includes('dasharray'), 'validation dashed, training solid');
  assert.equal((svg.match(/<circle /g) ?? []).length, 6, 'a dot per evaluation and one in the legend');
});

test('a falling run fills the plot between zero and a round ceiling above its first loss', () => {
  const rows: MetricsRow[] = Array.from({ length: 20 }, (_, i) => ({ step: i + 1, loss: 10.4 - 0.3 * i }));
  const svg = lossCurveSvg(rows);
  const ys = pathYs(svg, '#1f77b4');
  assert.ok(ys[0]! < ys[ys.length - 1]!, 'the line goes down the page as the loss falls');
  assert.deepEqual(tickLabels(svg, 'y'), [0, 5, 10, 15]);
  assert.deepEqual(tickLabels(svg, 'x'), [0, 5, 10, 15, 20]);
  assert.ok(!svg.includes('validation loss'), 'no legend entry for a series that was not logged');
});
