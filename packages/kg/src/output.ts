// The gen-data output: JSONL training records with provenance, appended one
// line at a time, and read back on a rerun to skip what is done.

import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { OutputFormatError } from './errors.js';
import type { CmekgRecord } from './graph.js';
import { knowledgeKey } from './sample.js';

/**
 * One output line: HuaTuo's training record (`instruction`, `input`, `output`,
 * as in llama_data.json) plus provenance.
 */
export interface InstructionRecord {
  instruction: string;
  input: '';
  output: string;
  /** The sampled knowledge the pair was written from, in CMeKG shape. */
  knowledge: CmekgRecord;
  /** `templated` for offline templates, `llm:<model>` for model-written pairs. */
  source: string;
}

/** What an existing output file already holds. */
export interface ExistingOutput {
  records: InstructionRecord[];
  /** Sample keys of the records. */
  keys: Set<string>;
  /** True when a partial last line (an interrupted write) was removed. */
  repairedPartialLine: boolean;
}

/**
 * Read an output file for resuming. A missing file holds nothing. A last line
 * without its newline that does not parse (a write cut off by a kill) is
 * removed by rewriting the file through a temporary file and a rename; any
 * other unreadable line is an error and the file is left untouched.
 */
export function readExistingOutput(file: string): ExistingOutput {
  const out: ExistingOutput = { records: [], keys: new Set(), repairedPartialLine: false };
  if (!existsSync(file)) return out;
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const endsClean = text === '' || text.endsWith('\n');
  if (endsClean) lines.pop();
  let keepChars = text.length;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (i === lines.length - 1 && !endsClean) {
        keepChars = text.length - line.length;
        out.repairedPartialLine = true;
        break;
      }
      throw new OutputFormatError(file, i + 1, `not valid JSON (${(e as Error).message}); fix or remove the line, or write to another --out file`);
    }
    const rec = value as Partial<InstructionRecord> | null;
    const key = rec !== null && typeof rec === 'object' ? knowledgeKey(rec.knowledge) : undefined;
    if (key === undefined || typeof rec?.instruction !== 'string' || typeof rec.output !== 'string') {
      throw new OutputFormatError(file, i + 1, 'expected a gen-data record with "instruction", "output" and CMeKG "knowledge" ({"class", "中心词", attributes}); resume only into a file gen-data wrote, or choose another --out file');
    }
    if (out.keys.has(key)) {
      throw new OutputFormatError(file, i + 1, `repeats the knowledge sample ${key} of an earlier line; remove one of the two lines`);
    }
    out.keys.add(key);
    out.records.push(rec as InstructionRecord);
  }
  if (out.repairedPartialLine) {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, text.slice(0, keepChars));
    renameSync(tmp, file);
  } else if (!endsClean) {
    // The last record is complete but its newline was not written.
    appendFileSync(file, '\n');
  }
  return out;
}

/** Appends records to a JSONL file, one complete line per write. */
export class RecordWriter {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
    mkdirSync(dirname(file), { recursive: true });
  }

  /** Append one record as one line. */
  append(record: InstructionRecord): void {
    appendFileSync(this.file, `${JSON.stringify(record)}\n`);
  }
}
