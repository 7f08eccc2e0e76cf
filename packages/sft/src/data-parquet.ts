// HuaTuo's question/answer records from a Parquet file, the form the Hugging Face Hub gives every data
// set: only the instruction/input/output columns are read, one row group at a time, and each row is
// checked as a JSON record would be. Browser-safe; the reader (hyparquet) is loaded on first use.

/// <reference path="./hyparquet-compressors.d.ts" />
import type { ByteSource } from '@huatuo/llama';
import { checkRecord, type LoadedData, type LoadedRecord, type RecordKind } from './data.js';
import { DataError } from './errors.js';

type Hyparquet = typeof import('hyparquet');
type SchemaElement = import('hyparquet').SchemaElement;

const MAGIC = [0x50, 0x41, 0x52, 0x31]; // "PAR1", at both ends of a Parquet file

/** Whether a file name says Parquet (`train-00000-of-00001.parquet`). */
export function isParquetName(file: string): boolean {
  return /\.parquet$/i.test(file);
}

/** Whether `head`, a file's first bytes, begins with Parquet's magic "PAR1" (`prefix`: or with part of it, for a file cut short). */
export function hasParquetMagic(head: Uint8Array, prefix = false): boolean {
  return MAGIC.every((b, i) => head[i] === b || (prefix && i >= head.length && head.length > 0));
}

let reader: Promise<{ hyparquet: Hyparquet; compressors: import('hyparquet').Compressors }> | null = null;

/**
 * hyparquet and the decompressors of hyparquet-compressors, imported once, when first needed. Snappy
 * is hyparquet's own JavaScript decoder: the compressors' WebAssembly one cannot start under the web
 * app's Content-Security-Policy (script-src 'self'), so their index is not imported.
 */
function loadReader() {
  reader ??= Promise.all([
    import('hyparquet'),
    import('fzstd'),
    import('hyparquet-compressors/src/gzip.js'),
    import('hyparquet-compressors/src/brotli.js'),
    import('hyparquet-compressors/src/lz4.js'),
  ]).then(([hyparquet, zstd, gzip, brotli, lz4]) => ({
    hyparquet,
    compressors: {
      ZSTD: (input: Uint8Array) => zstd.decompress(input),
      GZIP: (input: Uint8Array, length: number) => gzip.gunzip(input, new Uint8Array(length)),
      BROTLI: brotli.decompressBrotli,
      LZ4: lz4.decompressLz4,
      LZ4_RAW: lz4.decompressLz4Raw,
    },
  }));
  return reader;
}

/** What a column holds, for a message: "INT64 numbers", "lists". */
function describeColumn(element: SchemaElement, nested: boolean): string {
  if (nested) return element.converted_type === 'LIST' || element.logical_type?.type === 'LIST' ? 'lists' : element.converted_type === 'MAP' ? 'maps' : 'structs';
  if (element.repetition_type === 'REPEATED') return `repeated ${element.type} values`;
  const annotation = element.logical_type?.type ?? element.converted_type;
  return `${element.type}${annotation ? ` (${annotation})` : ''} values`;
}

/** Strings are BYTE_ARRAY, annotated STRING (UTF8) or ENUM, or not annotated at all as older writers do. */
function holdsStrings(element: SchemaElement): boolean {
  if (element.type !== 'BYTE_ARRAY' || element.repetition_type === 'REPEATED') return false;
  const annotation = element.logical_type?.type ?? element.converted_type;
  return annotation === undefined || annotation === 'STRING' || annotation === 'UTF8' || annotation === 'ENUM';
}

async function readRange(source: ByteSource, start: number, end: number): Promise<ArrayBuffer> {
  if (!(start >= 0 && end >= start && end <= source.size)) throw new Error(`the footer points at bytes ${start} to ${end} of a ${source.size}-byte file`);
  const bytes = await source.read(start, end - start);
  if (bytes.byteLength !== end - start) throw new Error(`the file shrank while it was read (${bytes.byteLength} of ${end - start} bytes at ${start})`);
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  return new Uint8Array(bytes).buffer; // a copy: a view's own buffer (a Node Buffer's pool) holds other bytes
}

/**
 * The hyparquet view of a byte source; a range outside the file means the footer points nowhere.
 * hyparquet prefetches ranges it may never await once another read has failed, so each read is
 * marked handled here (whoever awaits it still gets its error) lest it end the process as an unhandled rejection.
 */
function asyncBuffer(source: ByteSource) {
  return {
    byteLength: source.size,
    slice(start: number, end = source.size): Promise<ArrayBuffer> {
      const read = readRange(source, start, end);
      read.catch(() => {});
      return read;
    },
  };
}

function damaged(file: string, err: unknown, where: string): DataError {
  const why = err instanceof Error ? err.message.split('\n')[0]!.slice(0, 160) : String(err);
  return new DataError(file, [`cannot read ${where}: ${why}; the file is damaged or incomplete: download or write it again`]);
}

/**
 * Reads the records of a Parquet file: columns "instruction", "input" and "output" (for `questions`,
 * "instruction" and whichever of the others exist), UTF-8 strings, one record per row. Other columns
 * are never read; a null is refused as a JSON null would be. The file is read by ranges (footer, then
 * each row group's three column chunks), never whole.
 * @throws DataError naming `source.name`: not Parquet, damaged, a column missing or not of strings, bad rows.
 * @example const { records } = await readParquetRecords(blobSource(pickedFile)); // a picked train-00000-of-00001.parquet
 */
export async function readParquetRecords(source: ByteSource, kind: RecordKind = 'training'): Promise<LoadedData> {
  const file = source.name;
  const head = await source.read(0, 4);
  const tail = await source.read(Math.max(0, source.size - 4), 4);
  if (!hasParquetMagic(head, true)) {
    const text = new TextDecoder().decode(head).trimStart();
    const json = text.startsWith('{') || text.startsWith('[') ? '; it holds JSON: name it .json or .jsonl' : '';
    throw new DataError(file, [
      source.size === 0 ? 'the file is empty; expected a Parquet file' : `not a Parquet file: it does not begin with the bytes "PAR1" that every Parquet file begins with${json}`,
    ]);
  }
  if (source.size < 12 || !hasParquetMagic(tail)) {
    throw new DataError(file, ['the Parquet file is cut short: it does not end with "PAR1" after its footer; download or write it again']);
  }

  const { hyparquet, compressors } = await loadReader();
  const buffer = asyncBuffer(source);
  let metadata: import('hyparquet').FileMetaData;
  let columns: SchemaElement[];
  try {
    metadata = await hyparquet.parquetMetadataAsync(buffer);
    columns = hyparquet.parquetSchema(metadata).children.map((c) => ({ ...c.element, num_children: c.children.length }));
  } catch (err) {
    throw damaged(file, err, 'the Parquet footer');
  }

  const wanted = kind === 'training' ? ['instruction', 'input', 'output'] : ['instruction', ...['input', 'output'].filter((n) => columns.some((c) => c.name === n))];
  const problems: string[] = [];
  for (const name of wanted) {
    const column = columns.find((c) => c.name === name);
    if (!column) {
      const has = `the file's columns are ${columns.map((c) => `"${c.name}"`).join(', ') || 'none'}`;
      problems.push(
        kind === 'training'
          ? `missing column "${name}"; every record needs "instruction", "input" and "output" string columns (input may be ""); ${has}`
          : `missing column "instruction"; every question needs an "instruction" string column; ${has}`,
      );
    } else if ((column.num_children ?? 0) > 0 || !holdsStrings(column)) {
      problems.push(`column "${name}" holds ${describeColumn(column, (column.num_children ?? 0) > 0)}; it must hold strings`);
    }
  }
  if (problems.length > 0) throw new DataError(file, problems);
  if (metadata.num_rows === 0n) throw new DataError(file, ['the Parquet file holds no rows; expected one record per row']);

  const records: LoadedRecord[] = [];
  let groupStart = 0;
  for (const [g, group] of metadata.row_groups.entries()) {
    const groupEnd = groupStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await hyparquet.parquetReadObjects({ file: buffer, metadata, columns: wanted, rowStart: groupStart, rowEnd: groupEnd, compressors });
    } catch (err) {
      throw damaged(file, err, `row group ${g + 1} of ${metadata.row_groups.length}`);
    }
    if (rows.length !== groupEnd - groupStart) throw damaged(file, new Error(`${rows.length} rows decoded, ${groupEnd - groupStart} declared`), `row group ${g + 1}`);
    rows.forEach((row, i) => {
      const record = checkRecord(row, `row ${groupStart + i + 1}`, problems, kind);
      if (record) records.push({ ...record, location: { file, row: groupStart + i + 1 } });
    });
    groupStart = groupEnd;
  }
  if (problems.length > 0) throw new DataError(file, problems);
  return { file, format: 'parquet', records };
}
