// Reading HuaTuo's question/answer files from disk (Node): the demo sample's path and the
// loaders that hand a file's text to parseRecords, or a Parquet file to readParquetRecords.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openFileSource } from '@huatuo/llama';
import { jsonMessage, parseRecords, type LoadedData, type RecordKind } from './data.js';
import { hasParquetMagic, isParquetName, readParquetRecords } from './data-parquet.js';
import { DataError } from './errors.js';

/** The built-in demo sample of Chinese medical QA (`huatuo-train` with no data path). */
export const DEMO_DATA_PATH: string = fileURLToPath(new URL('../data/demo-qa.jsonl', import.meta.url));

function readError(file: string, err: unknown): DataError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file; check the data path' : code === 'EISDIR' ? 'is a directory; pass a JSON, JSONL or Parquet file' : jsonMessage(err);
  return new DataError(file, [`cannot read: ${why}`]);
}

/**
 * Reads and parses a data file: a JSON array, JSONL, or Parquet (a name ending in .parquet, or
 * a file beginning with Parquet's magic bytes), read by columns and row groups, never whole.
 * @example const { records } = await loadRecords('../shared/data/huatuo/llama_data.json'); // 8,658 records
 * @example const { records } = await loadRecords('train-00000-of-00001.parquet'); // a Hugging Face data set
 */
export async function loadRecords(file: string, kind: RecordKind = 'training'): Promise<LoadedData> {
  let text: string;
  try {
    const source = await openFileSource(file);
    try {
      if (isParquetName(file) || hasParquetMagic(await source.read(0, 4))) return await readParquetRecords(source, kind);
    } finally {
      await source.close();
    }
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw err instanceof DataError ? err : readError(file, err);
  }
  return parseRecords(text, file, kind);
}

/** Synchronous {@link loadRecords}, for JSON and JSONL only (Parquet is read by loadRecords). */
export function loadRecordsSync(file: string): LoadedData {
  const parquet = new DataError(file, ['a Parquet file: read it with the asynchronous loadRecords (loadRecordsSync reads JSON and JSONL only)']);
  if (isParquetName(file)) throw parquet;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw readError(file, err);
  }
  if (text.startsWith('PAR1')) throw parquet;
  return parseRecords(text, file);
}
