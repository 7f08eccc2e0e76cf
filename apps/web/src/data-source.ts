// The training data of the page: the shipped demo QA or a picked JSON/JSONL file of HuaTuo's
// {instruction, input, output} records, checked by @huatuo/sft's parser (errors name the line).

import { parseRecords, type LoadedRecord } from '@huatuo/sft';

/** Records ready to split and tokenize, with the text they came from (kept for resuming). */
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

/** Parses records from text; throws DataError listing every bad line or record. */
export function fromText(text: string, file: string, demo: boolean): DataSource {
  return { file, demo, text, records: parseRecords(text, file).records };
}

/** Reads and parses a picked file. */
export async function loadDataFile(file: File): Promise<DataSource> {
  return fromText(await file.text(), file.name, false);
}
