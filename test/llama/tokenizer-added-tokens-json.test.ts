// added_tokens.json beside a tokenizer.json, read as transformers 4.57.6's AutoTokenizer reads it when
// tokenizer_config.json has no added_tokens_decoder: test/fixtures/tokenizer/llama-added-tokens-json.json, from
// scripts/fixtures/make-tokenizer-added-json-fixture.py (the real transformers and tokenizers libraries).
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HfTokenizer, TokenizerError, llamaTokenizerDir, loadTokenizer, tokenizerFromFiles, type TokenizerFiles } from '@huatuo/llama';

interface Folder {
  name: string;
  addedTokensJson: Record<string, number>;
  addedTokens?: Record<string, unknown>[];
  specialTokensMap: Record<string, unknown>;
  tokens: Record<string, { id: number; special: boolean | null }>;
  vocabSize: number;
  padId: number | null;
  cases: { text: string; ids: number[]; decoded: string; skipSpecial: string }[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-added-tokens-json.json', import.meta.url), 'utf8')) as { folders: Folder[] };
const dir = llamaTokenizerDir();
const shipped = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
const tokenizerConfigJson = readFileSync(join(dir, 'tokenizer_config.json'), 'utf8');

function filesOf(folder: Folder): TokenizerFiles {
  return {
    tokenizerJson: JSON.stringify({ ...shipped, added_tokens: [...shipped.added_tokens, ...(folder.addedTokens ?? [])] }),
    tokenizerConfigJson,
    specialTokensMapJson: JSON.stringify(folder.specialTokensMap),
    addedTokensJson: JSON.stringify(folder.addedTokensJson),
  };
}

describe("added_tokens.json beside tokenizer.json, as transformers' PreTrainedTokenizerFast adds its tokens", () => {
  for (const folder of fixture.folders) {
    it(`${folder.name}: ids, vocabulary size, pad id and decoded text`, () => {
      const tok = tokenizerFromFiles(filesOf(folder));
      assert.ok(tok instanceof HfTokenizer);
      assert.equal(tok.vocabSize, folder.vocabSize);
      if (folder.padId !== null) assert.equal(tok.padId, folder.padId);
      for (const [content, { id }] of Object.entries(folder.tokens)) {
        // transformers' convert_tokens_to_ids gives unk (0) for a content it does not know.
        assert.equal(tok.pieceToId(content) ?? 0, id, content);
      }
      for (const c of folder.cases) {
        assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, JSON.stringify(c.text));
        assert.equal(tok.decode(c.ids), c.decoded, `decode of ${JSON.stringify(c.text)}`);
        assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.skipSpecial, `decode skipping special tokens of ${JSON.stringify(c.text)}`);
      }
    });
  }

  it('loadTokenizer reads added_tokens.json from a folder with tokenizer.json', async () => {
    const folder = fixture.folders.find((f) => f.name === 'new tokens') as Folder;
    const files = filesOf(folder);
    const path = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
    writeFileSync(join(path, 'tokenizer.json'), files.tokenizerJson as string);
    writeFileSync(join(path, 'tokenizer_config.json'), tokenizerConfigJson);
    writeFileSync(join(path, 'special_tokens_map.json'), files.specialTokensMapJson as string);
    writeFileSync(join(path, 'added_tokens.json'), files.addedTokensJson as string);
    const tok = await loadTokenizer(path);
    assert.equal(tok.vocabSize, 32003);
    assert.deepEqual(tok.encode('a <med_0> b', { addBos: false }), [263, 32001, 289]);
    assert.equal(tok.padId, 32000);
  });

  it('opens neither added_tokens.json nor special_tokens_map.json when tokenizer_config.json has added_tokens_decoder, so a corrupt one does not stop the load, with tokenizer.json or tokenizer.model', () => {
    const decoder = Object.fromEntries(['<unk>', '<s>', '</s>'].map((content, id) => [String(id), { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }]));
    const config = JSON.stringify({ ...(JSON.parse(tokenizerConfigJson) as Record<string, unknown>), added_tokens_decoder: decoder });
    const corrupt = { tokenizerConfigJson: config, addedTokensJson: '{"<med_0>": 32000', specialTokensMapJson: '[' };
    assert.equal(tokenizerFromFiles({ ...corrupt, tokenizerJson: JSON.stringify(shipped) }).vocabSize, 32000);
    assert.equal(tokenizerFromFiles({ ...corrupt, tokenizerModel: new Uint8Array(readFileSync(join(dir, 'tokenizer.model'))) }).vocabSize, 32000);
    assert.throws(() => tokenizerFromFiles({ ...corrupt, tokenizerConfigJson, tokenizerJson: JSON.stringify(shipped) }, 'm'), (e: unknown) => e instanceof TokenizerError && e.file === 'm/special_tokens_map.json');
  });
});
