// The tokenizer folders of the fixtures that scripts/fixtures/make-tokenizer-special-defaults-fixture.py and
// make-tokenizer-model-type-fixture.py write, rebuilt as files, and the check of a tokenizer against what transformers
// made of its folder.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { llamaTokenizerDir, parseSentencePieceModel, writeSentencePieceModel, type Tokenizer, type TokenizerFiles } from '@huatuo/llama';
import { qwen2TokenizerJson } from './qwen2-tokenizer-files.js';

/** A folder of a fixture: what it holds and what transformers made of it. */
export interface Folder {
  name: string;
  source: 'tokenizer.json' | 'tokenizer.model' | 'qwen2';
  renamed?: boolean;
  /** tokenizer_config.json; null where the folder has none. */
  config: Record<string, unknown> | null;
  /** The text of config.json, where the folder has one. */
  modelConfig?: string;
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

const dir = llamaTokenizerDir();
const RENAMED: Record<string, string> = { '<unk>': '<|unk|>', '<s>': '<|bos|>', '</s>': '<|eos|>' };

/** `value` with every string and key among RENAMED's keys renamed, as the fixture script renames them. */
export function renamed(value: unknown): unknown {
  if (typeof value === 'string') return RENAMED[value] ?? value;
  if (Array.isArray(value)) return value.map(renamed);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [renamed(k), renamed(v)]));
  return value;
}

/** The files of `folder`, as the fixture script wrote them. */
export function filesOf(folder: Folder): TokenizerFiles {
  const files: TokenizerFiles = folder.config === null ? {} : { tokenizerConfigJson: JSON.stringify(folder.config) };
  if (folder.modelConfig !== undefined) files.modelConfigJson = folder.modelConfig;
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

/** Checks `tok` against what transformers made of `folder`: len(tokenizer), added tokens, special ids, ids and decoded text. */
export function checkAgainstTransformers(tok: Tokenizer, folder: Folder): void {
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
