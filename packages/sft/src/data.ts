// Parsing HuaTuo's question/answer records: a JSON array or JSON Lines, whatever the
// file's extension, each record {instruction, input, output}, checked field by field (Parquet rows,
// read by data-parquet.ts, are checked by the same rules). Browser-safe.

import { DataError } from './errors.js';

/** One instruction-tuning record in alpaca / HuaTuo format. `input` is "" in HuaTuo's data. */
export interface QaRecord {
  instruction: string;
  input: string;
  output: string;
}

/** Where a record came from: a 1-based line of a JSONL file, position in a JSON array or row of a Parquet file. */
export type RecordLocation = { file: string; line: number } | { file: string; index: number } | { file: string; row: number };

/** A record with its location, for messages that point back at the file. */
export interface LoadedRecord extends QaRecord {
  location: RecordLocation;
}

/** The records of one file and the format they were found in. */
export interface LoadedData {
  file: string;
  format: 'jsonl' | 'json-array' | 'parquet';
  records: LoadedRecord[];
}

/**
 * "llama_data.json line 12", "liver_cancer.json record 7" or "train-00000-of-00001.parquet row 5" (all 1-based).
 * @example describeLocation({ file: '/d/x.jsonl', line: 3 }) === 'x.jsonl line 3'
 */
export function describeLocation(location: RecordLocation): string {
  const name = baseName(location.file);
  if ('line' in location) return `${name} line ${location.line}`;
  return 'row' in location ? `${name} row ${location.row}` : `${name} record ${location.index}`;
}

/** The last segment of a path (either separator), as path.basename gives it. */
export function baseName(path: string): string {
  return path.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? path;
}

const FIELDS = ['instruction', 'input', 'output'] as const;

/** How an error names a value it got: its type and, for a scalar, the start of its JSON. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)?.slice(0, 40)}`;
}

/**
 * What a record must hold: `training` data an instruction, an input (may be "") and an answer; `questions`
 * to answer (generate --input) only an instruction, with input "" and output "" where absent.
 */
export type RecordKind = 'training' | 'questions';

/** Checks one parsed value (or Parquet row) against the record shape; returns the record or pushes problems. */
export function checkRecord(value: unknown, where: string, problems: string[], kind: RecordKind): QaRecord | null {
  const shape = kind === 'training' ? '{"instruction", "input", "output"}' : '{"instruction"} (and optionally "input")';
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${where}: expected an object ${shape}, got ${typeName(value)}`);
    return null;
  }
  const obj = value as Record<string, unknown>;
  const before = problems.length;
  for (const field of FIELDS) {
    if (!(field in obj)) {
      if (kind === 'questions' && field !== 'instruction') continue;
      problems.push(kind === 'training' ? `${where}: missing "${field}"; every record needs "instruction", "input" and "output" strings (input may be "")` : `${where}: missing "instruction"; every question needs an "instruction" string`);
    } else if (typeof obj[field] !== 'string') {
      problems.push(`${where}: "${field}" must be a string, got ${typeName(obj[field])}`);
    }
  }
  if (problems.length > before) return null;
  const record = { instruction: obj['instruction'] as string, input: (obj['input'] ?? '') as string, output: (obj['output'] ?? '') as string };
  if (record.instruction.trim() === '') problems.push(`${where}: "instruction" is empty; write the question or remove the record`);
  if (kind === 'training' && record.output.trim() === '') problems.push(`${where}: "output" is empty; write the answer or remove the record`);
  return problems.length > before ? null : record;
}

/** Line and column (1-based) of a character offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Finds the first JSON syntax error of `text`: its offset and, for a top-level array,
 * the 1-based element it falls in. JSON.parse's own messages carry no position in every
 * Node version, so the file is scanned once more to point at the fault.
 */
function locateJsonError(text: string): { offset: number; element: number | null } {
  let pos = 0;
  let topElement = 0;
  const fail = (): never => {
    throw pos;
  };
  const ws = (): void => {
    while (pos < text.length && ' \t\n\r'.includes(text[pos]!)) pos++;
  };
  const literal = (word: string): void => {
    if (text.startsWith(word, pos)) pos += word.length;
    else fail();
  };
  const string = (): void => {
    pos++; // opening quote
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 34) {
        pos++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 92) {
        const e = text[pos + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) fail();
          pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) pos += 2;
        else fail();
      } else pos++;
    }
    fail();
  };
  const number = (): void => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(pos, pos + 64));
    if (!m) fail();
    pos += m![0].length;
  };
  const value = (depth: number): void => {
    ws();
    const c = text[pos];
    if (c === '{') {
      pos++;
      ws();
      if (text[pos] === '}') {
        pos++;
        return;
      }
      for (;;) {
        ws();
        if (text[pos] !== '"') fail();
        string();
        ws();
        if (text[pos] !== ':') fail();
        pos++;
        value(depth + 1);
        ws();
        if (text[pos] === ',') pos++;
        else if (text[pos] === '}') {
          pos++;
          return;
        } else fail();
      }
    } else if (c === '[') {
      pos++;
      ws();
      if (text[pos] === ']') {
        pos++;
        return;
      }
      for (;;) {
        if (depth === 0) topElement++;
        value(depth + 1);
        ws();
        if (text[pos] === ',') pos++;
        else if (text[pos] === ']') {
          pos++;
          return;
        } else fail();
      }
    } else if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else number();
  };
  try {
    value(0);
    ws();
    if (pos < text.length) fail();
    return { offset: -1, element: null };
  } catch (offset) {
    if (typeof offset !== 'number') throw offset;
    return { offset, element: topElement > 0 ? topElement : null };
  }
}

/** The first line of a JSON.parse or read error's message. */
export function jsonMessage(err: unknown): string {
  // V8 quotes the whole input after the reason; the location is given separately.
  return err instanceof Error ? err.message.replace(/, ".*" is not valid JSON$/s, '').split('\n')[0]!.slice(0, 120) : String(err);
}

/**
 * Parses the text of a data file: a JSON array of records, or JSON Lines (one record
 * per line, blank lines skipped). The extension plays no part. `kind` 'questions' reads records to
 * answer, which need only an instruction (see RecordKind).
 * @throws DataError naming the file and every bad line or record.
 * @example parseRecords('{"instruction":"q","input":"","output":"a"}\n', 'x.json').records.length === 1
 */
export function parseRecords(text: string, file: string, kind: RecordKind = 'training'): LoadedData {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const first = /\S/.exec(text);
  if (!first) throw new DataError(file, ['the file is empty; expected a JSON array of records or one JSON record per line']);
  const problems: string[] = [];
  const records: LoadedRecord[] = [];

  if (first[0] === '[') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      const { offset, element } = locateJsonError(text);
      const at = offset >= 0 ? lineColumn(text, offset) : null;
      const where = at ? ` at line ${at.line}, column ${at.column}${element !== null ? ` (in record ${element})` : ''}` : '';
      throw new DataError(file, [`not valid JSON${where}: ${jsonMessage(err)}; fix the file, or write one JSON record per line (JSONL)`]);
    }
    if (!Array.isArray(parsed)) throw new DataError(file, ['expected a JSON array of records']);
    parsed.forEach((value, i) => {
      const location = { file, index: i + 1 };
      const record = checkRecord(value, `record ${i + 1}`, problems, kind);
      if (record) records.push({ ...record, location });
    });
    if (problems.length > 0) throw new DataError(file, problems);
    if (records.length === 0) throw new DataError(file, ['the JSON array holds no records']);
    return { file, format: 'json-array', records };
  }

  if (first[0] !== '{') {
    const at = lineColumn(text, first.index);
    throw new DataError(file, [
      `not JSON or JSONL: line ${at.line} begins with ${JSON.stringify(first[0])}; expected "[" (a JSON array of records) or "{" (one JSON record per line)`,
    ]);
  }

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      if (i === 0 && records.length === 0) {
        // A pretty-printed single object also starts with "{": say so instead of "bad line 1".
        try {
          const whole: unknown = JSON.parse(text);
          if (whole !== null && typeof whole === 'object') {
            throw new DataError(file, ['holds a single JSON object spread over several lines; expected a JSON array of records or one record per line (JSONL)']);
          }
        } catch (inner) {
          if (inner instanceof DataError) throw inner;
        }
      }
      const { offset } = locateJsonError(line);
      problems.push(`line ${i + 1}${offset >= 0 ? `, column ${offset + 1}` : ''}: not valid JSON (${jsonMessage(err)}); each line must hold one complete JSON record`);
      continue;
    }
    const record = checkRecord(value, `line ${i + 1}`, problems, kind);
    if (record) records.push({ ...record, location: { file, line: i + 1 } });
  }
  if (problems.length > 0) throw new DataError(file, problems);
  return { file, format: 'jsonl', records };
}
