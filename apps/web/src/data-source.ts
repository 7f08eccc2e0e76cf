// The training data of the page: the shipped demo QA or a picked JSON/JSONL or Parquet file of
// HuaTuo's {instruction, input, output} records, checked by @huatuo/sft's readers (errors name the
// line or row). A Parquet file is read by Blob slices, its three columns only.

import { blobSource } from '@huatuo/llama';
import { hasParquetMagic, isParquetName, parseRecords, readParquetRecords, type LoadedRecord } from '@huatuo/sft';

/** Records ready to split and tokenize, with their text (kept for resuming: JSONL for a Parquet file). */
export interface DataSource {
  file: string;
  demo: boolean;
  text: string;
  records: LoadedRecord[];
}

/** The demo sample of Chinese medical QA, served beside the page. */
export async function loadDemoData(): Promise<DataSource> {
  const r = await fetch('assets/demo-qa.jsonl');
  if (!r.ok) throw new Error(`assets/demo-qa.jsonl: the server answered ${r.status}; rebuild the page (npm run web)`);
  return fromText(await r.text(), 'demo-qa.jsonl', true);
}

/**
 * Parses records from text; throws DataError listing every bad line or record. The text kept for a
 * Parquet file holds row N on line N, so its records keep their row numbers.
 */
export function fromText(text: string, file: string, demo: boolean): DataSource {
  const records = parseRecords(text, file).records;
  if (!isParquetName(file)) return { file, demo, text, records };
  return { file, demo, text, records: records.map((r) => ({ ...r, location: { file, row: 'line' in r.location ? r.location.line : 0 } })) };
}

/** Reads and parses a picked file: Parquet by name or by its first bytes, else JSON or JSONL. */
export async function loadDataFile(file: File): Promise<DataSource> {
  const source = blobSource(file);
  if (isParquetName(file.name) || hasParquetMagic(await source.read(0, 4))) {
    const { records } = await readParquetRecords(source);
    const text = records.map(({ instruction, input, output }) => `${JSON.stringify({ instruction, input, output })}\n`).join('');
    return { file: file.name, demo: false, text, records };
  }
  return fromText(await file.text(), file.name, false);
}
