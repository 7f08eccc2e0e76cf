// "add_prefix_space": null in tokenizer_config.json (as LlamaTokenizerFast.save_pretrained writes it) beside a
// tokenizer.model without tokenizer.json: transformers 4.57.6's LlamaConverter reads it as false, so no '▁' goes in
// front and decoding keeps the first space. test/fixtures/tokenizer/llama-prefix-null.json, from
// scripts/fixtures/make-tokenizer-prefix-null-fixture.py (the real transformers and tokenizers libraries).
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SentencePieceTokenizer, llamaTokenizerDir, tokenizerFromFiles } from '@huatuo/llama';

interface Folder {
  config: Record<string, unknown>;
  cases: { text: string; ids: number[]; decoded: string; skipSpecial: string }[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-prefix-null.json', import.meta.url), 'utf8')) as { folders: Folder[] };
const dir = llamaTokenizerDir();

describe('add_prefix_space null with tokenizer.model, read as LlamaConverter reads it', () => {
  for (const folder of fixture.folders) {
    it(`legacy ${String(folder.config.legacy)}: ids and decoded text as transformers gives them`, () => {
      const tok = tokenizerFromFiles({
        tokenizerModel: new Uint8Array(readFileSync(join(dir, 'tokenizer.model'))),
        tokenizerConfigJson: JSON.stringify(folder.config),
        specialTokensMapJson: readFileSync(join(dir, 'special_tokens_map.json')),
      });
      assert.ok(tok instanceof SentencePieceTokenizer);
      assert.equal(tok.settings.addPrefixSpace, false);
      for (const c of folder.cases) {
        assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
        assert.equal(tok.decode(c.ids), c.decoded, `decode of ${JSON.stringify(c.text)}`);
        assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.skipSpecial, `decode skipping special tokens of ${JSON.stringify(c.text)}`);
      }
    });
  }
});
