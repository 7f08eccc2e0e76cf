// Parquet data files (the Hugging Face Hub's form of every data set), read against fixtures that
// DuckDB wrote from qa.jsonl (scripts/fixtures/make-parquet-fixtures.mjs): the same records as the
// JSONL, faults named as JSON's are, damaged files refused, and only the needed bytes read.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parquetMetadata } from 'hyparquet';
import { blobSource, bytesSource, type ByteSource } from '@huatuo/llama';
import { DataError, describeLocation, loadRecords, loadRecordsSync, parseRecords, readParquetRecords, type LoadedRecord } from '@huatuo/sft';
import { fromText, loadDataFile } from '../../apps/web/src/data-source.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/sft/parquet/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sft-parquet-'));
const write = (name: string, bytes: Uint8Array | string) => {
  const file = join(dir, name);
  writeFileSync(file, bytes);
  return file;
};
const fields = (records: LoadedRecord[]) => records.map(({ instruction, input, output }) => ({ instruction, input, output }));
const jsonl = parseRecords(readFileSync(fixture('qa.jsonl'), 'utf8'), 'qa.jsonl').records;

/** A DataError for `file` whose problems match every pattern. */
function dataError(file: string, ...patterns: RegExp[]) {
  return (e: unknown) => {
    assert.ok(e instanceof DataError, `expected a DataError, got ${String(e)}`);
    assert.equal(e.file, file);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  };
}

test('snappy, zstd (data pages v2), gzip, brotli and lz4 files give the records of the same data as JSONL, row N at row N', async () => {
  for (const name of ['qa-zstd-v2.parquet', 'qa-gzip.parquet', 'qa-brotli.parquet', 'qa-lz4.parquet']) {
    const data = await loadRecords(fixture(name));
    assert.equal(data.format, 'parquet', name);
    assert.deepEqual(fields(data.records), fields(jsonl), name);
    assert.deepEqual(
      data.records.map((r) => r.location),
      jsonl.map((_, i) => ({ file: fixture(name), row: i + 1 })),
    );
  }
  assert.ok(jsonl.some((r) => r.input !== '') && jsonl.some((r) => r.output.includes('\n')) && jsonl.some((r) => r.output.includes('🚑')));
});

test('a file of several dictionary-encoded row groups reads every row in order and skips its other columns', async () => {
  const file = fixture('qa-repeated-snappy.parquet');
  const metadata = parquetMetadata(readFileSync(file).buffer as ArrayBuffer);
  assert.deepEqual(metadata.row_groups.map((g) => g.num_rows), [2048n, 112n]);
  assert.ok(metadata.row_groups[0]!.columns.every((c) => c.meta_data!.encodings.includes('PLAIN_DICTIONARY')));
  const data = await loadRecords(file);
  assert.equal(data.records.length, 2160);
  assert.deepEqual(fields(data.records), Array.from({ length: 2160 }, (_, r) => fields(jsonl)[r % 12]));
  assert.equal(describeLocation(data.records[2048]!.location), 'qa-repeated-snappy.parquet row 2049');
});

test('past the footer, only the instruction, input and output column chunks are read', async () => {
  const bytes = readFileSync(fixture('qa-repeated-snappy.parquet'));
  const metadata = parquetMetadata(bytes.buffer as ArrayBuffer);
  const skipped = metadata.row_groups.flatMap((g) =>
    g.columns
      .map((c) => c.meta_data!)
      .filter((m) => !['instruction', 'input', 'output'].includes(m.path_in_schema[0]!))
      .map((m) => {
        const start = Number(m.dictionary_page_offset ?? m.data_page_offset);
        return [start, start + Number(m.total_compressed_size)] as const;
      }),
  );
  assert.equal(skipped.length, 4); // id and tags, in both row groups
  const reads: [number, number][] = [];
  const inner = bytesSource('qa-repeated-snappy.parquet', bytes);
  const source: ByteSource = { ...inner, read: (offset, length) => (reads.push([offset, offset + length]), inner.read(offset, length)) };
  assert.equal((await readParquetRecords(source)).records.length, 2160);
  // The footer is read with the end of the file before it (hyparquet asks for the last 512 KiB at once);
  // each row group's three column chunks are then one read.
  const footerStart = bytes.byteLength - 8 - bytes.readUInt32LE(bytes.byteLength - 8);
  assert.ok(skipped.every(([, e]) => e < footerStart));
  const overlapping = reads.filter(([a, b]) => b < footerStart && skipped.some(([s, e]) => a < e && s < b));
  assert.ok(reads.filter(([, b]) => b < footerStart).length >= metadata.row_groups.length, `no read of each row group's columns: ${JSON.stringify(reads)}`);
  assert.deepEqual(overlapping, [], 'read bytes of the id or tags columns');
  const wanted = metadata.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data!).filter((m) => ['instruction', 'input', 'output'].includes(m.path_in_schema[0]!)));
  const below = reads.filter(([a, b]) => a >= 4 && b < footerStart); // past the magic "PAR1" checked first
  assert.equal(below.reduce((n, [a, b]) => n + b - a, 0), wanted.reduce((n, m) => n + Number(m.total_compressed_size), 0));
});

test('a missing column is named with the columns the file has', async () => {
  const file = fixture('answer-not-output.parquet');
  await assert.rejects(loadRecords(file), dataError(file, /missing column "output"; every record needs "instruction", "input" and "output" string columns/, /the file's columns are "instruction", "input", "answer"/));
});

test('a column of numbers is refused by name, before any row is read', async () => {
  const file = fixture('integer-output.parquet');
  await assert.rejects(loadRecords(file), dataError(file, /^.*: column "output" holds INT64 \(INT_64\) values; it must hold strings$/));
});

test('a null is refused as the same null in JSONL is, at its row', async () => {
  const file = fixture('null-input.parquet');
  const json = jsonl.slice(0, 3).map(({ instruction, input, output }, i) => JSON.stringify({ instruction, input: i === 1 ? null : input, output })).join('\n');
  let jsonProblems: readonly string[] = [];
  assert.throws(() => parseRecords(json, 'x.jsonl'), (e) => e instanceof DataError && ((jsonProblems = e.problems), true));
  assert.deepEqual(jsonProblems, ['line 2: "input" must be a string, got null']);
  await assert.rejects(loadRecords(file), (e) => dataError(file)(e) && (assert.deepEqual((e as DataError).problems, ['row 2: "input" must be a string, got null']), true));
});

test('questions to answer need only an instruction column; training needs all three', async () => {
  const file = fixture('questions.parquet');
  const { records } = await loadRecords(file, 'questions');
  assert.deepEqual(fields(records), jsonl.slice(0, 3).map((r) => ({ instruction: r.instruction, input: '', output: '' })));
  await assert.rejects(loadRecords(file), (e) => dataError(file, /missing column "input"/, /missing column "output"/)(e) && (e as DataError).problems.length === 2);
});

test('a file with no rows is refused', async () => {
  const file = fixture('no-rows.parquet');
  await assert.rejects(loadRecords(file), dataError(file, /holds no rows/));
});

test('a file named .parquet that is not Parquet is refused, and JSON in it is recognised', async () => {
  const json = write('train.parquet', readFileSync(fixture('qa.jsonl')));
  await assert.rejects(loadRecords(json), dataError(json, /not a Parquet file: it does not begin with the bytes "PAR1"/, /it holds JSON: name it \.json or \.jsonl/));
  const csv = write('csv.parquet', 'instruction,input,output\nq,,a\n');
  await assert.rejects(loadRecords(csv), (e) => dataError(csv, /not a Parquet file/)(e) && !/holds JSON/.test((e as DataError).message));
  const empty = write('empty.parquet', '');
  await assert.rejects(loadRecords(empty), dataError(empty, /the file is empty; expected a Parquet file/));
});

test('a Parquet file is recognised by its first bytes whatever its name; loadRecordsSync points to loadRecords', async () => {
  const file = join(dir, 'train-00000-of-00001');
  copyFileSync(fixture('qa-gzip.parquet'), file);
  assert.deepEqual(fields((await loadRecords(file)).records), fields(jsonl));
  assert.throws(() => loadRecordsSync(file), dataError(file, /a Parquet file: read it with the asynchronous loadRecords/));
  assert.throws(() => loadRecordsSync(fixture('qa-gzip.parquet')), dataError(fixture('qa-gzip.parquet'), /asynchronous loadRecords/));
});

test('a file cut short anywhere is a DataError naming it', async () => {
  const bytes = readFileSync(fixture('qa-repeated-snappy.parquet'));
  for (let end = 1; end < bytes.byteLength; end += 61) {
    const file = write('cut.parquet', bytes.subarray(0, end));
    await assert.rejects(loadRecords(file), dataError(file, /cut short/), `cut at ${end} of ${bytes.byteLength} bytes`);
  }
});

test('a damaged footer or column chunk gives a DataError naming the file, never a crash or a hang', { timeout: 120_000 }, async () => {
  const names = ['qa-repeated-snappy.parquet', 'qa-zstd-v2.parquet', 'qa-brotli.parquet', 'qa-lz4.parquet'];
  let refused = 0;
  let damagedPages = 0;
  for (const name of names) {
    const good = readFileSync(fixture(name));
    const footerLength = good.readUInt32LE(good.byteLength - 8);
    const footerStart = good.byteLength - 8 - footerLength;
    // Every 7th byte of the footer and every 61st of the column chunks, set to 0xff or flipped, which
    // breaks lengths, offsets and enums (every byte, set to 0x00, 0xff and flipped, passed too: 19,377 files).
    const positions = [...Array.from({ length: footerLength / 7 }, (_, i) => footerStart + 7 * i), ...Array.from({ length: (footerStart - 4) / 61 }, (_, i) => 4 + 61 * i)];
    for (const [i, at] of positions.entries()) {
      const bad = Uint8Array.from(good);
      bad[at] = i % 2 === 0 ? 0xff : good[at]! ^ 0x15;
      try {
        await readParquetRecords(bytesSource('bad.parquet', bad));
      } catch (e) {
        assert.ok(e instanceof DataError && e.file === 'bad.parquet', `${name} byte ${at} = ${bad[at]}: ${String(e)}`);
        refused++;
        if (at < footerStart && /row group/.test(e.message)) damagedPages++;
      }
    }
  }
  assert.ok(refused > 200 && damagedPages > 0, `${refused} damaged files refused, ${damagedPages} in a row group`);
  const cut = readFileSync(fixture('qa-gzip.parquet'));
  cut.writeUInt32LE(cut.byteLength * 2, cut.byteLength - 8);
  await assert.rejects(readParquetRecords(bytesSource('long-footer.parquet', cut)), dataError('long-footer.parquet', /cannot read the Parquet footer/, /damaged or incomplete/));
});

test('in a browser a picked Parquet file is read by Blob slices, and a resumed run keeps its rows', async () => {
  const bytes = readFileSync(fixture('qa-brotli.parquet'));
  const fromBlob = await readParquetRecords(blobSource(new Blob([bytes]), 'qa-brotli.parquet'));
  assert.deepEqual(fields(fromBlob.records), fields(jsonl));
  const picked = await loadDataFile(new File([bytes], 'qa-brotli.parquet'));
  assert.deepEqual(picked.records, fromBlob.records);
  const resumed = fromText(picked.text, picked.file, false);
  assert.deepEqual(resumed.records, picked.records);
  const sniffed = await loadDataFile(new File([bytes], 'qa'));
  assert.deepEqual(fields(sniffed.records), fields(jsonl));
  const json = await loadDataFile(new File([readFileSync(fixture('qa.jsonl'))], 'qa.jsonl'));
  assert.deepEqual(json.records, jsonl);
  await assert.rejects(loadDataFile(new File(['{"instruction": "q"}\n'], 'x.parquet')), dataError('x.parquet', /not a Parquet file/));
});
