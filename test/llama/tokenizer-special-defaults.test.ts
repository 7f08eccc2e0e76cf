// Special tokens that tokenizer_config.json leaves out, sets to null or to "", read as transformers 4.57.6's
// AutoTokenizer reads them: test/fixtures/tokenizer/llama-special-defaults.json, from
// scripts/fixtures/make-tokenizer-special-defaults-fixture.py (the real transformers and tokenizers libraries).
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TokenizerError, llamaTokenizerDir, parseSentencePieceModel, tokenizerFromFiles, writeSentencePieceModel, type Tokenizer, type TokenizerFiles } from '@huatuo/llama';
import { qwen2TokenizerJson } from './qwen2-tokenizer-files.js';

interface Folder {
  name: string;
  source: 'tokenizer.json' | 'tokenizer.model' | 'qwen2';
  renamed?: boolean;
  config: Record<string, unknown>;
  error?: string;
  fromPretrained?: false;
  vocabSize: number;
  addedTokensDecoder: Record<string, { content: string; skippedAsSpecial: boolean }>;
  bosId: number | null;
  eosId: number | null;
  padId: number | null;
  decodedIds: { id: number; decoded: string; skipSpecial: string }[];
  cases: { text: string; ids: number[]; plainIds: number[]; decoded: string; skipSpecial: string }[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-special-defaults.json', import.meta.url), 'utf8')) as {
  qwen2TokenizerJson: Record<string, unknown>;
  folders: Folder[];
};
const dir = llamaTokenizerDir();
const RENAMED: Record<string, string> = { '<unk>': '<|unk|>', '<s>': '<|bos|>', '</s>': '<|eos|>' };

/** `value` with every string and key among RENAMED's keys renamed, as the fixture script renames them. */
function renamed(value: unknown): unknown {
  if (typeof value === 'string') return RENAMED[value] ?? value;
  if (Array.isArray(value)) return value.map(renamed);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [renamed(k), renamed(v)]));
  return value;
}

function filesOf(folder: Folder): TokenizerFiles {
  const files: TokenizerFiles = { tokenizerConfigJson: JSON.stringify(folder.config) };
  if (folder.source === 'tokenizer.model') {
    const model = parseSentencePieceModel(new Uint8Array(readFileSync(join(dir, 'tokenizer.model'))));
    const pieces = folder.renamed === true ? model.pieces.map((p) => ({ ...p, piece: RENAMED[p.piece] ?? p.piece })) : model.pieces;
    files.tokenizerModel = writeSentencePieceModel({ ...model, pieces });
  } else if (folder.source === 'qwen2') {
    const json = qwen2TokenizerJson() as { added_tokens: { content: string }[] };
    if (folder.renamed === true) json.added_tokens = json.added_tokens.map((t) => (t.content === '<|endoftext|>' ? { ...t, content: '<|end|>' } : t));
    files.tokenizerJson = JSON.stringify(json);
  } else {
    const json: unknown = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    files.tokenizerJson = JSON.stringify(folder.renamed === true ? renamed(json) : json);
  }
  return files;
}

function checkAgainstTransformers(tok: Tokenizer, folder: Folder): void {
  assert.equal(tok.vocabSize, folder.vocabSize, 'len(tokenizer)');
  for (const [key, token] of Object.entries(folder.addedTokensDecoder)) {
    const id = Number(key);
    assert.equal(tok.pieceToId(token.content), id, `id of ${token.content}`);
    assert.equal(tok.idToPiece(id), token.content, `piece of ${id}`);
    assert.equal(tok.decode([id], { skipSpecialTokens: true }) === '', token.skippedAsSpecial, `${token.content} skipped as special`);
  }
  assert.equal(tok.hasBos, folder.bosId !== null, 'has a BOS');
  if (folder.bosId !== null) assert.equal(tok.bosId, folder.bosId, 'bos id');
  if (folder.eosId !== null) assert.equal(tok.eosId, folder.eosId, 'eos id');
  if (folder.padId !== null) assert.equal(tok.padId, folder.padId, 'pad id');
  for (const { id, decoded, skipSpecial } of folder.decodedIds) {
    assert.equal(tok.decode([id]), decoded, `decode of [${id}]`);
    assert.equal(tok.decode([id], { skipSpecialTokens: true }), skipSpecial, `decode of [${id}] skipping special tokens`);
  }
  for (const c of folder.cases) {
    assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
    assert.deepEqual(tok.encode(c.text, { addBos: false, addEos: false }), c.plainIds, `${JSON.stringify(c.text)} without BOS and EOS`);
    assert.equal(tok.decode(c.ids), c.decoded, `decode of ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.skipSpecial, `decode skipping special tokens of ${JSON.stringify(c.text)}`);
  }
}

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
