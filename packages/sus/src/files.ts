// File helpers: atomic writes (temp file + rename) and JSON / JSONL reading with
// errors that name the file and line.

import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { StudyFormatError } from './errors.js';

/**
 * Writes `text` to `path` through a temp file in the same folder and a rename, so a crash leaves
 * the old file or the new one. `mode` (e.g. 0o600 for secrets), when given, is the file's
 * permission bits from the moment it exists, whatever the umask; otherwise the umask decides.
 */
export function writeFileAtomic(path: string, text: string, mode?: number): void {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, text, mode === undefined ? {} : { mode });
  if (mode !== undefined) chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** Reads a file as UTF-8, stripping a byte-order mark. */
export function readText(path: string): string {
  if (!existsSync(path)) throw new StudyFormatError(path, undefined, 'file not found; check the path');
  return readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
}

/**
 * Parses JSONL (one object per line, blank lines skipped) or, when the text starts with `[`,
 * a JSON array. Returns each object with its 1-based line (JSONL) or element number (array).
 */
export function parseJsonRecords(text: string, file: string): Array<{ row: number; value: Record<string, unknown> }> {
  const out: Array<{ row: number; value: Record<string, unknown> }> = [];
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(trimmed);
    } catch (e) {
      throw new StudyFormatError(file, undefined, `not valid JSON (${(e as Error).message}); expected a JSON array or JSONL`);
    }
    (arr as unknown[]).forEach((v, i) => out.push({ row: i + 1, value: asObject(v, file, i + 1) }));
    return out;
  }
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new StudyFormatError(file, i + 1, `not valid JSON (${(e as Error).message}); each line must be one JSON object`);
    }
    out.push({ row: i + 1, value: asObject(v, file, i + 1) });
  });
  return out;
}

function asObject(v: unknown, file: string, row: number): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new StudyFormatError(file, row, `expected a JSON object, got ${Array.isArray(v) ? 'an array' : typeof v}`);
  }
  return v as Record<string, unknown>;
}
