// Special and added tokens that are not all in the vocabulary or that the files give differently, read as transformers
// 4.57.6's AutoTokenizer reads them: test/fixtures/tokenizer/llama-special-added.json, from
// scripts/fixtures/make-tokenizer-special-added-fixture.py (the real transformers and tokenizers libraries).
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TokenizerError, llamaTokenizerDir, loadTokenizer, tokenizerFromFiles, type Tokenizer, type TokenizerFiles } from '@huatuo/llama';

interface AddedTokenFlags {
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
  skippedAsSpecial: boolean;
}
interface Folder {
  name: string;
  model?: boolean;
  config?: Record<string, unknown>;
  specialTokensMap?: Record<string, unknown>;
  addedTokensJson?: Record<string, number>;
  addedTokens?: Record<string, unknown>[];
  vocabSize: number;
  addedTokensDecoder: Record<string, AddedTokenFlags>;
  padId: number | null;
  bosId: number | null;
  eosId: number | null;
  cases: { text: string; ids: number[]; decoded: string; skipSpecial: string }[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-special-added.json', import.meta.url), 'utf8')) as { folders: Folder[] };
const dir = llamaTokenizerDir();
const shipped = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
const shippedConfig = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
const tokenizerModel = new Uint8Array(readFileSync(join(dir, 'tokenizer.model')));

/** The folder's files as the fixture script writes them (a setting of null left out, as Python's None). */
function filesOf(folder: Folder): Record<string, string | Uint8Array> {
  const config = Object.fromEntries(Object.entries({ ...shippedConfig, ...folder.config }).filter(([, v]) => v !== null));
  const files: Record<string, string | Uint8Array> = { 'tokenizer_config.json': JSON.stringify(config) };
  if (folder.model === true) files['tokenizer.model'] = tokenizerModel;
  else files['tokenizer.json'] = JSON.stringify({ ...shipped, added_tokens: [...shipped.added_tokens, ...(folder.addedTokens ?? [])] });
  if (folder.specialTokensMap !== undefined) files['special_tokens_map.json'] = JSON.stringify(folder.specialTokensMap);
  if (folder.addedTokensJson !== undefined) files['added_tokens.json'] = JSON.stringify(folder.addedTokensJson);
  return files;
}

function tokenizerFilesOf(folder: Folder): TokenizerFiles {
  const files = filesOf(folder);
  const out: TokenizerFiles = { tokenizerConfigJson: files['tokenizer_config.json'] as string };
  if (files['tokenizer.json'] !== undefined) out.tokenizerJson = files['tokenizer.json'] as string;
  if (files['tokenizer.model'] !== undefined) out.tokenizerModel = files['tokenizer.model'] as Uint8Array;
  if (files['special_tokens_map.json'] !== undefined) out.specialTokensMapJson = files['special_tokens_map.json'] as string;
  if (files['added_tokens.json'] !== undefined) out.addedTokensJson = files['added_tokens.json'] as string;
  return out;
}

function checkAgainstTransformers(tok: Tokenizer, folder: Folder): void {
  assert.equal(tok.vocabSize, folder.vocabSize, 'len(tokenizer)');
  for (const [key, token] of Object.entries(folder.addedTokensDecoder)) {
    const id = Number(key);
    assert.equal(tok.pieceToId(token.content), id, `id of ${token.content}`);
    assert.equal(tok.idToPiece(id), token.content, `piece of ${id}`);
    assert.equal(tok.decode([id], { skipSpecialTokens: true }) === '', token.skippedAsSpecial, `${token.content} skipped as special`);
  }
  if (folder.padId !== null) assert.equal(tok.padId, folder.padId, 'pad id');
  if (folder.bosId !== null) assert.equal(tok.bosId, folder.bosId, 'bos id');
  if (folder.eosId !== null) assert.equal(tok.eosId, folder.eosId, 'eos id');
  for (const c of folder.cases) {
    assert.deepEqual(tok.encode(c.text, { addBos: false, addEos: false }), c.ids, JSON.stringify(c.text));
    assert.equal(tok.decode(c.ids), c.decoded, `decode of ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.skipSpecial, `decode skipping special tokens of ${JSON.stringify(c.text)}`);
  }
}

describe("special and added tokens missing from the vocabulary or given differently by the files, as transformers' AutoTokenizer adds them", () => {
  for (const folder of fixture.folders) {
    it(`${folder.name}: len(tokenizer), added tokens, special ids, ids and decoded text`, () => {
      checkAgainstTransformers(tokenizerFromFiles(tokenizerFilesOf(folder)), folder);
    });
  }

  it('loadTokenizer adds a pad_token missing from the vocabulary of a folder', async () => {
    const folder = fixture.folders.find((f) => f.name === 'pad_token and additional_special_tokens beside added_tokens_decoder') as Folder;
    const path = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
    for (const [name, contents] of Object.entries(filesOf(folder))) writeFileSync(join(path, name), contents);
    checkAgainstTransformers(await loadTokenizer(path), folder);
  });

  it('still names added_tokens.json when an id in it is not an integer', () => {
    const folder = fixture.folders.find((f) => f.name === 'added_tokens.json id past the next free one') as Folder;
    for (const model of [false, true]) {
      const files = tokenizerFilesOf({ ...folder, model, addedTokensJson: { '<m>': 'x' as unknown as number } });
      assert.throws(
        () => tokenizerFromFiles(files, 'm'),
        (e: unknown) => e instanceof TokenizerError && e.file === 'm/added_tokens.json' && /^m\/added_tokens\.json: "<m>" maps to "x", expected an integer id/.test(e.message),
      );
    }
  });
});
