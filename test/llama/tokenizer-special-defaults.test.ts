// Special tokens that tokenizer_config.json leaves out, sets to null or to "", read as transformers 4.57.6's
// AutoTokenizer reads them: test/fixtures/tokenizer/llama-special-defaults.json, from
// scripts/fixtures/make-tokenizer-special-defaults-fixture.py (the real transformers and tokenizers libraries).
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TokenizerError, tokenizerFromFiles } from '@huatuo/llama';
import { qwen2TokenizerJson } from './qwen2-tokenizer-files.js';
import { checkAgainstTransformers, filesOf, type Folder } from './tokenizer-fixture-folders.js';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-special-defaults.json', import.meta.url), 'utf8')) as {
  qwen2TokenizerJson: Record<string, unknown>;
  folders: Folder[];
};

describe("special tokens that tokenizer_config.json leaves out, sets to null or to \"\", as transformers' AutoTokenizer reads them", () => {
  it("the fixture's Qwen2-style tokenizer.json is test/llama/qwen2-tokenizer-files.ts's", () => {
    assert.deepEqual(fixture.qwen2TokenizerJson, qwen2TokenizerJson());
  });

  for (const folder of fixture.folders.filter((f) => f.error === undefined && f.fromPretrained === undefined)) {
    it(`${folder.name} (${folder.source}): len(tokenizer), added tokens, special ids, ids and decoded text`, () => {
      checkAgainstTransformers(tokenizerFromFiles(filesOf(folder)), folder);
    });
  }

  for (const folder of fixture.folders.filter((f) => f.error?.startsWith('ValueError: add_bos_token = True but bos_token = None') === true)) {
    it(`${folder.name} (${folder.source}): refused as LlamaTokenizerFast refuses it, naming tokenizer_config.json`, () => {
      assert.throws(
        () => tokenizerFromFiles(filesOf(folder), 'm'),
        (e: unknown) => e instanceof TokenizerError && e.file === 'm/tokenizer_config.json' && /add_bos_token is unset \(true for LlamaTokenizer\) but bos_token is null/.test(e.message),
      );
    });
  }

  it('a tokenizer.json with eos_token null and no "</s>" is refused, naming eos_token and tokenizer_config.json: here a tokenizer has an EOS', () => {
    const qwen2 = fixture.folders.find((f) => f.name === 'Qwen2Tokenizer naming no special token') as Folder;
    assert.throws(
      () => tokenizerFromFiles(filesOf({ ...qwen2, config: { ...qwen2.config, eos_token: null } }), 'q'),
      (e: unknown) => e instanceof TokenizerError && e.file === 'q/tokenizer_config.json' && /^q\/tokenizer\.json: has no "<\/s>" to end sequences with where q\/tokenizer_config\.json has eos_token null; name the model's token in eos_token of q\/tokenizer_config\.json$/.test(e.message),
    );
  });

  it('tokenizer.model with bos_token null and add_bos_token false has no BOS: bosId and addBos true are errors naming tokenizer_config.json', () => {
    const folder = fixture.folders.find((f) => f.name === 'LlamaTokenizer with every special token null and add_bos_token false' && f.source === 'tokenizer.model') as Folder;
    const tok = tokenizerFromFiles(filesOf(folder), 'm');
    assert.equal(tok.hasBos, false);
    const naming = (e: unknown): boolean => e instanceof TokenizerError && e.file === 'm/tokenizer_config.json' && e.message.includes('no BOS token (m/tokenizer_config.json has bos_token null)');
    assert.throws(() => tok.bosId, naming);
    assert.throws(() => tok.encode('hi', { addBos: true }), naming);
  });

  // transformers loads none of these: "LLaMATokenizer" is no class of it, and bos_token or eos_token "" with unk_token
  // "" sends LlamaTokenizerFast's lookup of their ids round in circles (from_pretrained returns False). Read here with
  // the model's own <s>, </s> and <unk>.
  for (const folder of fixture.folders.filter((f) => f.fromPretrained === false || f.error?.includes('LLaMATokenizer') === true)) {
    it(`${folder.name} (${folder.source}): loaded with the model's own <s> and </s>, where ${folder.error === undefined ? "transformers' from_pretrained returns False" : 'transformers refuses the class'}`, () => {
      const tok = tokenizerFromFiles(filesOf(folder));
      assert.equal(tok.vocabSize, 32000);
      assert.deepEqual([tok.bosId, tok.eosId, tok.padId], [1, 2, 0]);
      assert.deepEqual(tok.encode('the', { addEos: true }), [1, 278, 2]);
      assert.equal(tok.decode([1, 278, 2], { skipSpecialTokens: true }), 'the');
    });
  }
});
