// Benchmark output: a table on the terminal, bench/results/<adapter>-<date>.json, and bench/RESULTS.md
// holding the latest table for each adapter measured (other adapters' sections are kept); for a budgeted
// acceptance run, rows.jsonl and acceptance.md written as the rows come, and the targets computed from them.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Row } from './timing.js';

const benchDir = dirname(fileURLToPath(import.meta.url));

const fmt = (x: number | null | undefined, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

export function table(rows: Row[]): string {
  const lines = ['| bench | impl | dtype | shape | ms | GFLOP/s | GB/s | of roofline | note |', '|---|---|---|---|---:|---:|---:|---:|---|'];
  for (const r of rows) {
    const roof = r.roofline === null || r.roofline === undefined ? '-' : `${(r.roofline * 100).toFixed(0)} %`;
    lines.push(`| ${r.bench} | ${r.impl} | ${r.dtype} | ${r.shape} | ${fmt(r.ms, 2)} | ${fmt(r.gflops)} | ${fmt(r.gbps, 2)} | ${roof} | ${r.note ?? ''} |`);
  }
  return lines.join('\n');
}

export function slug(adapter: string): string {
  return adapter.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Writes the JSON rows and replaces this adapter's section of RESULTS.md; returns the JSON path. */
export function writeResults(adapter: string, rows: Row[], summary: string, quick: boolean): { json: string; markdown: boolean } {
  const date = new Date().toISOString().slice(0, 10);
  const jsonPath = join(benchDir, 'results', `${slug(adapter)}-${date}${quick ? '-quick' : ''}.json`);
  writeAtomic(jsonPath, JSON.stringify(rows, null, 1) + '\n');
  // A quick subset never replaces the full table of an adapter already measured.
  if (quick && existsSync(join(benchDir, 'RESULTS.md')) && readFileSync(join(benchDir, 'RESULTS.md'), 'utf8').includes(`## ${adapter}\n\nMeasured`)) {
    return { json: jsonPath, markdown: false };
  }
  const mdPath = join(benchDir, 'RESULTS.md');
  const header = '# Benchmark results\n\nLatest `npm run bench` table for each adapter measured (`bench/run.ts`). Rows: median ms of runs timed to GPU completion (a readback of a few values), after an untimed first run.\n';
  const old = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : header;
  const sections = old.split(/^## /m);
  const begin = `## ${adapter}\n`;
  const body = `${begin}\n${quick ? '(quick subset) ' : ''}Measured ${date}; rows also in \`bench/results/${jsonPath.split('/').pop()}\`.\n\n${summary}\n\n${table(rows)}\n`;
  const kept = sections.slice(1).filter((s) => !s.startsWith(`${adapter}\n`));
  const text = [sections[0]!.trimEnd() + '\n', ...kept.map((s) => `## ${s.trimEnd()}\n`), body].join('\n');
  writeAtomic(mdPath, text);
  return { json: jsonPath, markdown: true };
}

/**
 * A row of a budgeted acceptance run (`bench/run.ts --acceptance`): a benchmark row with the facts that its
 * summary computes the targets from.
 */
export interface AcceptanceRow extends Row {
  /** The section that measured it: roofline, matmul, lora, decode or decode-variants. */
  section: string;
  /** Decoder layers of a LoRA-step or decode row. */
  layers?: number;
  /** Tokens a LoRA step trains on (batch x sequence). */
  tokens?: number;
  /** Bytes of weights one decoded token reads (the projections and lm_head). */
  weightBytes?: number;
  /** Roofline copy kernel: bytes read / time, GB/s. */
  readGbps?: number;
  /** Computed from the 2- and 4-layer rows, not measured. */
  extrapolated?: boolean;
}

/** ms at `layers` layers from measurements at 2 and 4: the 2-layer figure plus a per-layer cost for each layer more. */
export function extrapolateLayers(ms2: number, ms4: number, layers: number): number {
  return ms2 + ((layers - 2) * (ms4 - ms2)) / 2;
}

/** The rows of a rows.jsonl file; a last line cut off mid-write (a run killed while writing) is left out. */
export function readRowsJsonl(text: string): AcceptanceRow[] {
  const rows: AcceptanceRow[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      rows.push(JSON.parse(line) as AcceptanceRow);
    } catch {
      // Only a cut last line can fail to parse: every line is written whole by one append.
    }
  }
  return rows;
}

/** The targets the acceptance run checks, as fractions (decode against `generate`: a speed-up factor). */
export const TARGETS = { f16: 0.4, f32: 0.6, loraStep: 0.3, decodeCopy: 0.6, decodeGenerate: 3 };

const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
/** A rate with three significant digits below 100 (toy sizes give rates far under 1). */
const rate = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');

/**
 * The targets computed from whatever rows exist: f16 matmul against PyTorch's f16, f32 (SIMT) against
 * PyTorch's f32 without TF32, the LoRA step's tokens/s at 32 layers (extrapolated from 2 and 4) against
 * PyTorch + PEFT, greedy decoding at 32 layers (extrapolated) against `generate` and against the copy
 * kernel's read bandwidth. A target whose rows are missing says which.
 */
export function acceptanceSummary(rows: AcceptanceRow[]): string[] {
  const lines: string[] = [];
  const measured = rows.filter((r) => !r.extrapolated);
  const ours = (r: AcceptanceRow) => r.impl === 'huatuo';
  const theirs = (r: AcceptanceRow) => r.impl.startsWith('pytorch');
  for (const [dtype, target, what] of [['f16', TARGETS.f16, 'subgroup matrices where chosen'], ['f32', TARGETS.f32, 'SIMT; PyTorch without TF32']] as const) {
    const mine = measured.filter((r) => r.section === 'matmul' && ours(r) && r.dtype === dtype);
    if (mine.length === 0) {
      lines.push(`- matmul ${dtype}: no rows.`);
      continue;
    }
    for (const r of mine) {
      const t = measured.find((p) => p.section === 'matmul' && theirs(p) && p.dtype === dtype && p.shape === r.shape);
      const tf = (x: AcceptanceRow) => (x.gflops ?? NaN) / 1000;
      if (t === undefined) lines.push(`- matmul ${dtype} ${r.shape}: ${rate(tf(r))} TFLOP/s; no PyTorch row.`);
      else {
        const x = tf(r) / tf(t);
        lines.push(`- matmul ${dtype} ${r.shape} (${what}): ${rate(tf(r))} TFLOP/s = ${pct(x)} of PyTorch's ${rate(tf(t))} (${t.impl}; target ${pct(target)}): ${verdict(x >= target)}.`);
      }
    }
  }
  const at = (section: string, pick: (r: AcceptanceRow) => boolean, layers: number) => measured.find((r) => r.section === section && pick(r) && r.layers === layers);
  /** ms at 32 layers: measured, else extrapolated from 2 and 4; null without both. */
  const at32 = (section: string, pick: (r: AcceptanceRow) => boolean): { ms: number; how: string; row: AcceptanceRow } | null => {
    const m32 = at(section, pick, 32);
    if (m32) return { ms: m32.ms, how: 'measured at 32 layers', row: m32 };
    const r2 = at(section, pick, 2);
    const r4 = at(section, pick, 4);
    if (!r2 || !r4) return null;
    const noise = r4.ms <= r2.ms ? '; not slower at 4 layers than at 2, so the figure is noise' : '';
    return { ms: extrapolateLayers(r2.ms, r4.ms, 32), how: `extrapolated from ${rate(r2.ms)} / ${rate(r4.ms)} ms at 2 / 4 layers${noise}`, row: r4 };
  };
  const step = at32('lora', ours);
  const peft = at32('lora', theirs);
  if (!step) lines.push('- LoRA step: needs huatuo rows at 2 and 4 layers to extrapolate to 32.');
  else {
    const tokens = step.row.tokens ?? NaN;
    const mine = (tokens * 1000) / step.ms;
    const head = `- LoRA step at 32 layers: ${rate(step.ms)} ms = ${rate(mine)} tokens/s (${step.how})`;
    if (!peft) lines.push(`${head}; no PyTorch + PEFT rows.`);
    else {
      const x = mine / (((peft.row.tokens ?? NaN) * 1000) / peft.ms);
      lines.push(`${head} = ${pct(x)} of PyTorch + PEFT's tokens/s at ${rate(peft.ms)} ms a step (${peft.how}; target ${pct(TARGETS.loraStep)}): ${verdict(x >= TARGETS.loraStep)}.`);
    }
  }
  const dec = at32('decode', ours);
  const gen = at32('decode', theirs);
  if (!dec) lines.push('- Greedy decode: needs huatuo rows at 2 and 4 layers to extrapolate to 32.');
  else {
    const head = `- Greedy decode at 32 layers: ${rate(dec.ms)} ms a token = ${rate(1000 / dec.ms)} tokens/s (${dec.how})`;
    lines.push(gen ? `${head}, ${(gen.ms / dec.ms).toFixed(2)}x the speed of transformers' generate at ${rate(gen.ms)} ms a token (${gen.how}; target ${TARGETS.decodeGenerate}x): ${verdict(gen.ms / dec.ms >= TARGETS.decodeGenerate)}.` : `${head}; no transformers generate rows.`);
    const r2 = at('decode', ours, 2);
    const r4 = at('decode', ours, 4);
    const copy = rows.find((r) => r.section === 'roofline' && r.readGbps !== undefined);
    if (r2?.weightBytes !== undefined && r4?.weightBytes !== undefined && copy?.readGbps !== undefined) {
      const perLayer = (r4.weightBytes - r2.weightBytes) / 2;
      const bytes32 = r2.weightBytes + 30 * perLayer;
      const gbps = bytes32 / dec.ms / 1e6;
      const x = gbps / copy.readGbps;
      lines.push(`- Greedy decode reads ${rate(bytes32 / 1e9)} GB of weights a token at 32 layers: ${rate(gbps)} GB/s = ${pct(x)} of the copy kernel's ${rate(copy.readGbps)} GB/s read (target ${pct(TARGETS.decodeCopy)}): ${verdict(x >= TARGETS.decodeCopy)}.`);
    } else lines.push('- Greedy decode against the copy bandwidth: needs the roofline row and decode rows at 2 and 4 layers.');
  }
  return lines;
}

/**
 * Rows and notes of a run written to a folder as they come, so that a run stopped at any point (a time
 * limit, a crash, SIGKILL) leaves everything measured so far: `rows.jsonl` (one JSON row a line, appended
 * at once) and `acceptance.md` (the sections' notes, the targets computed from the rows so far and the
 * table, rewritten whole after every row and note).
 */
export class RowStream {
  readonly rows: AcceptanceRow[] = [];
  private readonly notes: string[] = [];
  readonly jsonlPath: string;
  readonly markdownPath: string;

  constructor(readonly dir: string, private readonly title: string, private readonly header: string) {
    mkdirSync(dir, { recursive: true });
    this.jsonlPath = join(dir, 'rows.jsonl');
    this.markdownPath = join(dir, 'acceptance.md');
    writeFileSync(this.jsonlPath, '');
    this.writeMarkdown();
  }

  /** Appends the row to rows.jsonl (one write, so a kill leaves whole lines) and rewrites acceptance.md. */
  row(r: AcceptanceRow): void {
    this.rows.push(r);
    appendFileSync(this.jsonlPath, `${JSON.stringify(r)}\n`);
    this.writeMarkdown();
  }

  /** A line under "Sections" (what ran, what was skipped and why). */
  note(text: string): void {
    this.notes.push(text);
    this.writeMarkdown();
  }

  summary(): string[] {
    return acceptanceSummary(this.rows);
  }

  private writeMarkdown(): void {
    const text = [`# ${this.title}`, '', this.header, '', '## Sections', '', ...this.notes.map((n) => `- ${n}`), '', '## Targets', '', ...this.summary(), '', '## Rows', '', table(this.rows), ''].join('\n');
    writeAtomic(this.markdownPath, text);
  }
}
