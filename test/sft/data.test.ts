import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { describeLocation, parseRecords, DEMO_DATA_PATH, loadRecords, loadRecordsSync, DataError, tokenizeRecords, MED_TEMPLATE } from '@huatuo/sft';
import { llamaText } from './llama-tokenizer.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/data/huatuo/${p}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sft-data-'));
const write = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};
const rec = (q: string, a: string) => ({ instruction: q, input: '', output: a });
const rejects = (text: string, pattern: RegExp) =>
  assert.throws(() => parseRecords(text, 'bad.json'), (e: unknown) => e instanceof DataError && e.file === 'bad.json' && pattern.test(e.message), pattern.source);

test("HuaTuo's llama_data.json loads as JSONL with 8,658 records, all with empty input", async () => {
  const data = await loadRecords(shared('llama_data.json'));
  assert.equal(data.format, 'jsonl');
  assert.equal(data.records.length, 8658);
  assert.ok(data.records.every((r) => r.input === ''));
  assert.deepEqual(data.records[41]!.location, { file: shared('llama_data.json'), line: 42 });
});

test("HuaTuo's liver_cancer.json loads as one JSON array of 1,000 records", () => {
  const data = loadRecordsSync(shared('liver_cancer.json'));
  assert.equal(data.format, 'json-array');
  assert.equal(data.records.length, 1000);
  assert.ok(data.records.some((r) => r.instruction.includes('<bot>:')));
  assert.equal(describeLocation(data.records[6]!.location), 'liver_cancer.json record 7');
});

test('JSONL and JSON arrays load alike whatever the extension', () => {
  const records = [rec('问1', '答1'), rec('问2', '答2')];
  const jsonl = records.map((r) => JSON.stringify(r)).join('\n');
  for (const name of ['a.json', 'a.jsonl', 'a.txt', 'a']) {
    const fromLines = loadRecordsSync(write(`lines-${name}`, `${jsonl}\n\n`));
    const fromArray = loadRecordsSync(write(`array-${name}`, JSON.stringify(records, null, 2)));
    assert.equal(fromLines.format, 'jsonl');
    assert.equal(fromArray.format, 'json-array');
    assert.deepEqual(fromLines.records.map(({ location: _, ...r }) => r), records);
    assert.deepEqual(fromArray.records.map(({ location: _, ...r }) => r), records);
  }
});

test('a byte-order mark, CRLF line ends and extra fields are accepted', () => {
  const data = parseRecords(`\ufeff${JSON.stringify({ ...rec('q', 'a'), id: 3 })}\r\n${JSON.stringify(rec('q2', 'a2'))}\r\n`, 'x.jsonl');
  assert.deepEqual(data.records.map((r) => r.output), ['a', 'a2']);
});

test('a malformed JSONL line is reported with its 1-based line number', () => {
  rejects(`${JSON.stringify(rec('q', 'a'))}\n{"instruction": "q", "input": ""\n`, /^bad\.json: line 2, column \d+: not valid JSON/);
});

test('every bad line is reported, not only the first', () => {
  const text = [JSON.stringify(rec('q', 'a')), '{oops}', JSON.stringify(rec('q', 'a')), '[1]'].join('\n');
  assert.throws(() => parseRecords(text, 'bad.json'), (e: unknown) => e instanceof DataError && e.problems.length === 2 && /line 2/.test(e.problems[0]!) && /line 4/.test(e.problems[1]!));
});

test('a malformed JSON array is reported with line, column and record', () => {
  rejects(`[\n${JSON.stringify(rec('q', 'a'))},\n{"instruction": "q" "input": "", "output": "a"}\n]`, /not valid JSON at line 3, column 21 \(in record 2\)/);
});

test('a file that is neither JSON nor JSONL, or empty, is refused', () => {
  rejects('instruction,output\nq,a\n', /not JSON or JSONL: line 1 begins with "i"/);
  rejects('  \n', /the file is empty/);
  rejects('{\n  "instruction": "q",\n  "input": "",\n  "output": "a"\n}\n', /single JSON object spread over several lines/);
});

test('records missing a field, or with a field of the wrong type, are named', () => {
  rejects(`${JSON.stringify({ instruction: 'q', output: 'a' })}\n`, /line 1: missing "input"/);
  rejects(JSON.stringify([rec('q', 'a'), { instruction: 'q', input: '' }]), /record 2: missing "output"/);
  rejects(JSON.stringify([{ instruction: 'q', input: '', output: 5 }]), /record 1: "output" must be a string, got number 5/);
  rejects(JSON.stringify([rec('q', 'a'), 'text']), /record 2: expected an object/);
});

test('empty answers and questions are refused with their location', () => {
  rejects(`${JSON.stringify(rec('q', 'a'))}\n${JSON.stringify(rec('q', '  '))}\n`, /line 2: "output" is empty/);
  rejects(JSON.stringify([rec('', 'a')]), /record 1: "instruction" is empty/);
});

test('a missing file is a DataError naming it', () => {
  const file = join(dir, 'nope.json');
  assert.throws(() => loadRecordsSync(file), (e: unknown) => e instanceof DataError && e.message.startsWith(file) && /no such file/.test(e.message));
});

test('the built-in demo sample loads: at least 200 records, no duplicate question, HuaTuo format', () => {
  const data = loadRecordsSync(DEMO_DATA_PATH);
  assert.equal(data.format, 'jsonl');
  assert.ok(data.records.length >= 200, `${data.records.length} records`);
  assert.equal(new Set(data.records.map((r) => r.instruction)).size, data.records.length);
  assert.equal(new Set(data.records.map((r) => r.output)).size, data.records.length);
  assert.ok(data.records.every((r) => r.input === ''));
});

test('every demo answer fits cutoffLen 256 with LLaMA tokenization, EOS included', () => {
  const { records } = loadRecordsSync(DEMO_DATA_PATH);
  const { examples, warnings } = tokenizeRecords(records, MED_TEMPLATE, llamaText, { cutoffLen: 256, trainOnInputs: false });
  assert.deepEqual(warnings, []);
  assert.ok(examples.every((e) => e.eosAppended && e.inputIds.length <= 256));
});

test('questions to answer need only an instruction; training records still need input and output', () => {
  const text = '{"instruction": "头痛怎么办"}\n{"instruction": "发烧", "input": "三天"}\n{"instruction": "咳嗽", "input": "", "output": ""}\n';
  const { records } = parseRecords(text, 'q.jsonl', 'questions');
  assert.deepEqual(records.map((r) => [r.instruction, r.input, r.output]), [['头痛怎么办', '', ''], ['发烧', '三天', ''], ['咳嗽', '', '']]);
  assert.throws(() => parseRecords(text, 'q.jsonl'), (e) => e instanceof DataError && /line 1: missing "input"/.test(e.message) && /line 3: "output" is empty/.test(e.message));
  assert.throws(() => parseRecords('{"input": "x"}\n{"instruction": 3}\n', 'q.jsonl', 'questions'), (e) =>
    e instanceof DataError && /line 1: missing "instruction"; every question needs an "instruction" string/.test(e.message) && /line 2: "instruction" must be a string/.test(e.message));
});
