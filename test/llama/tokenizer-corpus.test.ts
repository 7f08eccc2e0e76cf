import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { both, oracle } from '../fixtures/tokenizer/llama-tokenizers.ts';

const data = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/data/huatuo');

interface HuatuoRecord {
  instruction: string;
  input: string;
  output: string;
}

function texts(): { where: string; text: string }[] {
  const out: { where: string; text: string }[] = [];
  const add = (file: string, i: number, r: HuatuoRecord): void => {
    for (const field of ['instruction', 'input', 'output'] as const) out.push({ where: `${file} record ${i} ${field}`, text: r[field] });
  };
  readFileSync(`${data}/llama_data.json`, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .forEach((line, i) => add('llama_data.json', i, JSON.parse(line) as HuatuoRecord));
  (JSON.parse(readFileSync(`${data}/liver_cancer.json`, 'utf8')) as HuatuoRecord[]).forEach((r, i) => add('liver_cancer.json', i, r));
  return out;
}

describe('LLaMA tokenizer on the HuaTuo data', () => {
  const corpus = texts();
  const expected = corpus.map(({ text }) => oracle(text));

  it('reads all 8658 + 1000 records', () => {
    assert.equal(corpus.length, (8658 + 1000) * 3);
  });

  for (const [name, tok] of both) {
    it(`gives llama-tokenizer-js's ids on every record through ${name}`, () => {
      corpus.forEach(({ where, text }, i) => {
        const ids = tok.encode(text);
        assert.deepEqual(ids, expected[i], `${where}: ${JSON.stringify(text.slice(0, 60))}`);
      });
    });
  }
});
