// Added tokens with single_word true (found only where no word character is beside them), alone or with lstrip /
// rstrip, normalized or not, in a folder with tokenizer.json (LLaMA's legacy normalizer, or none under legacy false) or
// with only tokenizer.model: the ids of transformers 4.57.6's AutoTokenizer over the tokenizers library 0.22.2,
// test/fixtures/tokenizer/llama-single-word.json from scripts/fixtures/make-tokenizer-single-word-fixture.py.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HfTokenizer, TokenizerError, llamaTokenizerDir, tokenizerFromFiles, type Tokenizer } from '@huatuo/llama';

interface Folder {
  name: string;
  files: 'tokenizer.json' | 'tokenizer.model';
  /** The fields of the saved tokenizer.json that differ from the shipped one. */
  tokenizerJson?: Record<string, unknown>;
  config: Record<string, unknown>;
  vocabSize: number;
  ids: Record<string, number>;
}
interface Case {
  folder: string;
  text: string;
  ids: number[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-single-word.json', import.meta.url), 'utf8')) as { folders: Folder[]; cases: Case[] };
const dir = llamaTokenizerDir();
const shippedJson = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
const specialTokensMapJson = readFileSync(join(dir, 'special_tokens_map.json'), 'utf8');

function folderTokenizer(folder: Folder): Tokenizer {
  const tokenizerConfigJson = JSON.stringify(folder.config);
  if (folder.files === 'tokenizer.model') {
    return tokenizerFromFiles({ tokenizerModel: new Uint8Array(readFileSync(join(dir, 'tokenizer.model'))), tokenizerConfigJson, specialTokensMapJson });
  }
  return tokenizerFromFiles({ tokenizerJson: JSON.stringify({ ...shippedJson, ...folder.tokenizerJson }), tokenizerConfigJson, specialTokensMapJson });
}

describe("single_word added tokens, found as transformers' AutoTokenizer finds them", () => {
  for (const folder of fixture.folders) {
    it(`${folder.name}: the ids of every case, the vocabulary size and the added tokens' ids`, () => {
      const tok = folderTokenizer(folder);
      assert.equal(tok.vocabSize, folder.vocabSize);
      for (const [content, id] of Object.entries(folder.ids)) assert.equal(tok.pieceToId(content), id, content);
      for (const c of fixture.cases.filter((k) => k.folder === folder.name)) {
        assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, JSON.stringify(c.text));
      }
    });
  }

  it('counts letters, combining marks, digits, "_" and joiners beside the token as word characters, and punctuation, symbols, other numbers and spaces not', () => {
    const tok = folderTokenizer(fixture.folders.find((f) => f.files === 'tokenizer.model') as Folder);
    const sw = 32000;
    for (const text of ['<sw>', 'a <sw> b', '-<sw>-', '<sw>,<sw>', '\u00b2<sw>', '\u2460<sw>', '\u{1f600}<sw>\u{1f600}', 'x\n<sw>\ty']) {
      assert.ok(tok.encode(text, { addBos: false }).includes(sw), JSON.stringify(text));
    }
    for (const text of ['a<sw>', '<sw>a', '1<sw>', '_<sw>', 'e\u0301<sw>', '\u200d<sw>', '<sw>\u200c', '\u{1d400}<sw>', '\u0660<sw>', '\u4e2d<sw>']) {
      assert.ok(!tok.encode(text, { addBos: false }).includes(sw), JSON.stringify(text));
    }
  });

  it('drops a single_word match whole: neither a shorter token at its start nor one inside it is looked for', () => {
    const tok = folderTokenizer(fixture.folders.find((f) => f.name === 'tokenizer.json, legacy') as Folder);
    // "qqz" (single_word) is the longest match at 1 and has "x" before it: "qq" and "zq" inside it stay text.
    assert.deepEqual(tok.encode('xqqz', { addBos: false }), [921, 24349, 29920]);
    assert.deepEqual(tok.encode('qqz', { addBos: false }), [32003]);
  });

  it('refuses a single_word token beside remove_space or do_lowercase_and_remove_accent, which @huggingface/tokenizers applies before the normalizer, naming tokenizer_config.json', () => {
    const json = { ...shippedJson, ...(fixture.folders[0] as Folder).tokenizerJson };
    for (const key of ['remove_space', 'do_lowercase_and_remove_accent']) {
      assert.throws(
        () => HfTokenizer.fromJson(json, { [key]: true }, 'm/tokenizer.json'),
        (e: unknown) => e instanceof TokenizerError && e.file === 'm/tokenizer_config.json' && new RegExp(`^m/tokenizer_config\\.json: ${key} is true and .*single_word true`).test(e.message),
      );
    }
  });

  it("finds a token of spaces again inside the spaces that an rstrip token took, as the tokenizers library's search goes on from the end of the match", () => {
    const tok = folderTokenizer(fixture.folders.find((f) => f.name === 'tokenizer.json, legacy') as Folder);
    assert.deepEqual(tok.encode('<r>    x', { addBos: false }), [32007, 32006, 32006, 921]);
    assert.deepEqual(tok.encode('<r>   x', { addBos: false }), [32007, 32006, 29871, 921]);
  });
});
