// Reading HuaTuo's question/answer files from disk (Node): the demo sample's path and the
// loaders that read a file and hand its text to parseRecords.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { jsonMessage, parseRecords, type LoadedData, type RecordKind } from './data.js';
import { DataError } from './errors.js';

/** The built-in demo sample of Chinese medical QA (`huatuo-train` with no data path). */
export const DEMO_DATA_PATH: string = fileURLToPath(new URL('../data/demo-qa.jsonl', import.meta.url));

function readError(file: string, err: unknown): DataError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file; check the data path' : code === 'EISDIR' ? 'is a directory; pass a JSON or JSONL file' : jsonMessage(err);
  return new DataError(file, [`cannot read: ${why}`]);
}

/**
 * Reads and parses a data file (JSON array or JSONL).
 * @example const { records } = await loadRecords('../shared/data/huatuo/llama_data.json'); // 8,658 records
 */
export async function loadRecords(file: string, kind: RecordKind = 'training'): Promise<LoadedData> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw readError(file, err);
  }
  return parseRecords(text, file, kind);
}

/** Synchronous {@link loadRecords}. */
export function loadRecordsSync(file: string): LoadedData {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw readError(file, err);
  }
  return parseRecords(text, file);
}
