// Benchmark output: a table on the terminal, bench/results/<adapter>-<date>.json, and bench/RESULTS.md
// holding the latest table for each adapter measured (other adapters' sections are kept).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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
