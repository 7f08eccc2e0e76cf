// Training metrics in the run's files: one JSON line per logged step or evaluation (metrics.jsonl), and
// the loss curve (loss.svg, drawn by loss-curve.ts).
import { lossCurveSvg, type LossCurveOptions } from './loss-curve.js';
import { runFiles as files } from './run-files.js';

/** One line of metrics.jsonl. */
export interface MetricsRow {
  step: number;
  /** The mean training loss of the steps since the previous row with a loss. */
  loss?: number;
  valLoss?: number;
  /** The learning rate the log records, as log_history's learning_rate (the 'log' event's lr). */
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

/** Writes the loss curve atomically. */
export async function writeLossCurve(path: string, history: readonly MetricsRow[], options: LossCurveOptions = {}): Promise<void> {
  await files.writeFile(path, lossCurveSvg(history, options));
}
