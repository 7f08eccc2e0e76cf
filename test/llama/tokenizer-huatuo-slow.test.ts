// HuaTuo's finetune.py tokenizes with transformers' slow LlamaTokenizer (legacy, as a LLaMA-1 tokenizer_config.json
// without `legacy` gives it); ours follows LlamaTokenizerFast. This pins that both give the same ids on every record
// of HuaTuo's data, prompt + answer and prompt alone, as the recipe tokenizes them.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { llamaTokenizerDir, loadTokenizer, tokenizerFromFiles, type Tokenizer } from '@huatuo/llama';
import { generatePrompt, loadRecordsSync, loadTemplate, textTokenizer, tokenizeRecord } from '@huatuo/sft';

interface FileDigests {
  file: string;
  sha256: string;
  template: string;
  records: number;
  fullTokens: number;
  digests: string;
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-huatuo-slow.json', import.meta.url), 'utf8')) as {
  files: FileDigests[];
  differences: unknown[];
};
const data = fileURLToPath(new URL('../../../shared/data/huatuo', import.meta.url));
const DIGEST_LENGTH = 8;

/** The fixture's digest of a record: SHA-256 of "<full ids>|<prompt ids>", first 8 hex digits. */
function digest(full: readonly number[], prompt: readonly number[]): string {
  return createHash('sha256').update(`${full.join(',')}|${prompt.join(',')}`).digest('hex').slice(0, DIGEST_LENGTH);
}

const dir = llamaTokenizerDir();
/** A LLaMA-1 folder: tokenizer.model and a tokenizer_config.json without `legacy`, as finetune.py's base model had. */
function llamaOneFolder(): Tokenizer {
  const { legacy: _, ...config } = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  return tokenizerFromFiles({ tokenizerModel: new Uint8Array(readFileSync(join(dir, 'tokenizer.model'))), tokenizerConfigJson: JSON.stringify(config) });
}

/**
 * Over every `step`-th record of the file: how many were checked, their tokens of prompt + answer, and how many do not
 * give the fixture's digest, the first `limit` of them as "llama_data.json record 12: ...".
 */
function mismatches(tok: Tokenizer, file: FileDigests, step: number, limit = 5): { checked: number; tokens: number; differing: number; first: string[] } {
  const template = loadTemplate(join(data, 'templates', `${file.template}.json`));
  const { records } = loadRecordsSync(join(data, file.file));
  const first: string[] = [];
  let checked = 0;
  let tokens = 0;
  let differing = 0;
  records.forEach((r, i) => {
    if (i % step !== 0) return;
    const full = tok.encode(generatePrompt(template, r.instruction, r.input, r.output));
    const prompt = tok.encode(generatePrompt(template, r.instruction, r.input));
    checked++;
    tokens += full.length;
    if (digest(full, prompt) !== file.digests.slice(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH)) {
      differing++;
      if (first.length < limit) first.push(`${file.file} record ${i}: ${JSON.stringify(r.instruction.slice(0, 40))}`);
    }
  });
  return { checked, tokens, differing, first };
}

const present = existsSync(join(data, 'llama_data.json'));
describe(
  "HuaTuo's data: our ids are the slow LlamaTokenizer's (test/fixtures/tokenizer/llama-huatuo-slow.json, scripts/fixtures/make-tokenizer-huatuo-slow-fixture.py)",
  { skip: present ? false : `HuaTuo's data is not at ${data}; put the shared folder beside the repository to run this` },
  () => {
    it('reads the data files the fixture was made from', () => {
      for (const f of fixture.files) {
        const sha256 = createHash('sha256').update(readFileSync(join(data, f.file))).digest('hex');
        assert.equal(sha256, f.sha256, `${join(data, f.file)} is not the file the fixture was made from; run scripts/fixtures/make-tokenizer-huatuo-slow-fixture.py`);
        assert.equal(f.digests.length, f.records * DIGEST_LENGTH);
      }
      assert.deepEqual(fixture.differences, [], 'the slow and fast restatements differ on some records');
    });

    it("gives the slow LlamaTokenizer's ids for every record's prompt + answer and prompt, from a folder with tokenizer.model and a tokenizer_config.json without legacy", () => {
      const tok = llamaOneFolder();
      for (const f of fixture.files) {
        const { checked, tokens, differing, first } = mismatches(tok, f, 1);
        assert.equal(differing, 0, `${f.file}: ${differing} records differ from the slow LlamaTokenizer's ids, first ${first.join('; ')}`);
        assert.equal(checked, f.records, f.file);
        assert.equal(tokens, f.fullTokens, f.file);
      }
    });

    // tokenizer.json's tokenizer is slower; test/llama/tokenizer-corpus.test.ts checks it against the other on every field.
    it("gives the same ids from packages/llama/assets/llama-tokenizer (tokenizer.json, legacy true), on every fourth record", async () => {
      const tok = await loadTokenizer(dir);
      for (const f of fixture.files) {
        const { checked, differing, first } = mismatches(tok, f, 4);
        assert.equal(differing, 0, `${f.file}: ${differing} records differ from the slow LlamaTokenizer's ids, first ${first.join('; ')}`);
        assert.equal(checked, Math.ceil(f.records / 4), f.file);
      }
    });

    it("tokenizes a record for training as finetune.py does with those ids: BOS, the text's ids, EOS", () => {
      const tok = textTokenizer(llamaOneFolder());
      const f = fixture.files.find((x) => x.file === 'infer.json')!;
      const template = loadTemplate(join(data, 'templates', `${f.template}.json`));
      loadRecordsSync(join(data, f.file)).records.forEach((r, i) => {
        const ex = tokenizeRecord(r, template, tok, { cutoffLen: 4096, trainOnInputs: false });
        const prompt = tok.encode(generatePrompt(template, r.instruction, r.input));
        assert.equal(ex.inputIds.at(-1), tok.eosId);
        assert.equal(ex.promptLength, prompt.length);
        assert.equal(digest(ex.inputIds.slice(0, -1), prompt), f.digests.slice(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH), `infer.json record ${i}`);
      });
    });
  },
);
