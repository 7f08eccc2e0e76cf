// Ratings: a SQLite store (WAL, synchronous FULL, one transaction per rating, upsert on
// annotator + item + dimension) and offline sheets (CSV, JSONL) exported per annotator
// and validated in full before anything is written.

import Database from 'better-sqlite3';
import { DIMENSIONS, orderFor, type Dimension, type Study } from './blind.js';
import { parseCsv, toCsv } from './csv.js';
import { StudyFormatError, RatingError } from './errors.js';
import { parseJsonRecords } from './files.js';

/** One stored rating; `value` is null only for a judge verdict recorded as missing. */
export interface Rating {
  annotator: string;
  code: string;
  dimension: Dimension;
  value: 1 | 2 | 3 | null;
  /** 'web', 'sheet' or 'judge'. */
  source: string;
  /** The judge's short reason, or the cause of a missing verdict. */
  reason?: string;
}

/** Checks that `v` is an integer rating 1, 2 or 3. */
export function isRatingValue(v: unknown): v is 1 | 2 | 3 {
  return v === 1 || v === 2 || v === 3;
}

/**
 * The rating store of a study (ratings.sqlite), as Label Studio keeps its default store:
 * SQLite in WAL mode with synchronous=FULL, so a committed rating survives a crash or kill -9.
 * @example const store = RatingStore.open('study/ratings.sqlite'); store.rate({...}); store.close();
 */
export class RatingStore {
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private readonly rateTx: (r: Rating) => void;
  private readonly rateManyTx: (rs: readonly Rating[]) => void;

  private constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS ratings (
      annotator TEXT NOT NULL,
      code TEXT NOT NULL,
      dimension TEXT NOT NULL CHECK (dimension IN ('safety', 'usability', 'smoothness')),
      value INTEGER CHECK (value IS NULL OR value IN (1, 2, 3)),
      source TEXT NOT NULL,
      reason TEXT,
      updated_at TEXT NOT NULL,
      PRIMARY KEY (annotator, code, dimension)
    )`);
    this.upsert = this.db.prepare(`INSERT INTO ratings (annotator, code, dimension, value, source, reason, updated_at)
      VALUES (@annotator, @code, @dimension, @value, @source, @reason, @updatedAt)
      ON CONFLICT (annotator, code, dimension) DO UPDATE SET
        value = excluded.value, source = excluded.source, reason = excluded.reason, updated_at = excluded.updated_at`);
    const write = (r: Rating): void => {
      this.upsert.run({ ...r, reason: r.reason ?? null, updatedAt: new Date().toISOString() });
    };
    this.rateTx = this.db.transaction(write);
    this.rateManyTx = this.db.transaction((rs: readonly Rating[]) => rs.forEach(write));
  }

  /** Opens (creating if needed) the store at `path`. */
  static open(path: string): RatingStore {
    return new RatingStore(path);
  }

  /** Journal mode and synchronous level actually in force (for checks). */
  settings(): { journalMode: string; synchronous: number } {
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
    };
  }

  /** Stores one rating in its own transaction; the same annotator, item and dimension again replaces it. */
  rate(r: Rating): void {
    checkRating(r);
    this.rateTx(r);
  }

  /** Stores many ratings in one transaction: all or none. */
  rateMany(rs: readonly Rating[]): void {
    rs.forEach(checkRating);
    this.rateManyTx(rs);
  }

  /** Ratings, optionally of one annotator. */
  list(annotator?: string): Rating[] {
    const rows = (annotator === undefined
      ? this.db.prepare('SELECT * FROM ratings ORDER BY annotator, code, dimension').all()
      : this.db.prepare('SELECT * FROM ratings WHERE annotator = ? ORDER BY code, dimension').all(annotator)) as Array<{
      annotator: string; code: string; dimension: Dimension; value: 1 | 2 | 3 | null; source: string; reason: string | null;
    }>;
    return rows.map((r) => ({ annotator: r.annotator, code: r.code, dimension: r.dimension, value: r.value, source: r.source, ...(r.reason === null ? {} : { reason: r.reason }) }));
  }

  /** Closes the database. */
  close(): void {
    this.db.close();
  }
}

function checkRating(r: Rating): void {
  if (!DIMENSIONS.includes(r.dimension)) throw new RatingError(`rating of ${r.code} by ${r.annotator}: dimension must be one of ${DIMENSIONS.join(', ')}; got "${String(r.dimension)}"`);
  if (r.value !== null && !isRatingValue(r.value)) throw new RatingError(`rating of ${r.code} by ${r.annotator}: value must be 1, 2 or 3; got ${JSON.stringify(r.value)}`);
  if (r.value === null && r.source !== 'judge') throw new RatingError(`rating of ${r.code} by ${r.annotator}: only a judge may record a missing verdict`);
}

/** Columns of an annotation sheet, in order. */
export const SHEET_COLUMNS = ['position', 'annotator', 'code', 'question', 'response', ...DIMENSIONS] as const;

/** Sheet formats. */
export type SheetFormat = 'csv' | 'jsonl';

/**
 * An annotator's sheet: their items in their order, with ratings already stored filled in.
 * CSV has a header row (and a UTF-8 BOM so spreadsheets read Chinese correctly); JSONL has one object per item.
 */
export function exportSheet(study: Study, annotator: string, format: SheetFormat, existing: readonly Rating[] = []): string {
  const have = new Map(existing.filter((r) => r.annotator === annotator).map((r) => [`${r.code}:${r.dimension}`, r.value]));
  const rows = orderFor(study, annotator).map((item, i) => ({
    position: i + 1,
    annotator,
    code: item.code,
    question: item.question,
    response: item.response,
    ...Object.fromEntries(DIMENSIONS.map((d) => [d, have.get(`${item.code}:${d}`) ?? ''])),
  })) as Array<Record<string, string | number>>;
  if (format === 'jsonl') return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  return '\uFEFF' + toCsv([[...SHEET_COLUMNS], ...rows.map((r) => SHEET_COLUMNS.map((c) => r[c] ?? ''))]);
}

/**
 * Parses and validates a filled sheet of `annotator`. Every item of the annotator must
 * appear exactly once; codes must belong to the study; each rating cell is 1, 2, 3 or empty
 * (not yet rated). Throws a {@link StudyFormatError} naming the file and row (CSV: the header is
 * row 1; JSONL: the line) on the first problem; nothing is written here.
 */
export function parseSheet(text: string, format: SheetFormat, file: string, study: Study, annotator: string): Rating[] {
  const rows: Array<{ row: number; value: Record<string, unknown> }> = [];
  if (format === 'csv') {
    const { records, error } = parseCsv(text);
    if (error) throw new StudyFormatError(file, error.record, `${error.message}; close the quote or re-export the sheet`);
    const header = (records[0] ?? []).map((h) => h.trim().toLowerCase());
    for (const col of ['code', ...DIMENSIONS]) {
      if (!header.includes(col)) throw new StudyFormatError(file, 1, `header lacks column "${col}"; expected columns ${SHEET_COLUMNS.join(', ')}`);
    }
    records.slice(1).forEach((rec, i) => {
      if (rec.length === 1 && rec[0]!.trim() === '') return;
      rows.push({ row: i + 2, value: Object.fromEntries(header.map((h, k) => [h, rec[k] ?? ''])) });
    });
  } else {
    rows.push(...parseJsonRecords(text, file));
  }
  const expected = new Set(orderFor(study, annotator).map((x) => x.code));
  const seen = new Map<string, number>();
  const out: Rating[] = [];
  for (const { row, value } of rows) {
    const code = String(value['code'] ?? '').trim();
    if (code === '') throw new StudyFormatError(file, row, 'the "code" cell is empty; every row needs the item code from the exported sheet');
    if (!expected.has(code)) throw new StudyFormatError(file, row, `unknown code "${code}"; it is not an item of this study for annotator "${annotator}". Use the sheet exported for this annotator`);
    const who = value['annotator'];
    if (who !== undefined && String(who).trim() !== '' && String(who).trim() !== annotator) {
      throw new StudyFormatError(file, row, `row belongs to annotator "${String(who).trim()}", but the sheet is imported for "${annotator}"; pass --annotator ${String(who).trim()}`);
    }
    const prev = seen.get(code);
    if (prev !== undefined) throw new StudyFormatError(file, row, `item ${code} appears again (first on row ${prev}); each item must appear exactly once`);
    seen.set(code, row);
    for (const d of DIMENSIONS) {
      const raw = value[d];
      const s = raw === undefined || raw === null ? '' : String(raw).trim();
      if (s === '') continue;
      const v = Number(s);
      if (!/^[123]$/.test(s) || !isRatingValue(v)) throw new StudyFormatError(file, row, `${d} of item ${code} must be 1, 2 or 3 (or empty if not rated yet); got "${s}"`);
      out.push({ annotator, code, dimension: d, value: v, source: 'sheet' });
    }
  }
  const missing = [...expected].filter((c) => !seen.has(c));
  if (missing.length > 0) {
    throw new StudyFormatError(file, undefined, `${missing.length} of the annotator's ${expected.size} items are missing (first: ${missing[0]}); every item must appear once, leave ratings empty if not rated yet`);
  }
  return out;
}
