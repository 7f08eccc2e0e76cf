// Added tokens past LLaMA's 32000 pieces (a resized adapter's added_tokens.json, or tokenizer_config.json's
// added_tokens_decoder with lstrip / rstrip / special) found in text as transformers 4.57's LlamaTokenizerFast finds
// them: test/fixtures/tokenizer/llama-added-tokens.json, scripts/fixtures/make-tokenizer-added-fixture.py.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HfTokenizer, loadTokenizer, llamaTokenizerDir, tokenizerFromFiles, type Tokenizer } from '@huatuo/llama';

interface Folder {
  name: string;
  config: Record<string, unknown>;
  addedTokensJson?: Record<string, number>;
}
interface Case {
  folder: string;
  text: string;
  fastIds: number[];
  slowIds: number[];
  fastDecoded: { plain: string; skipSpecialTokens: string };
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-added-tokens.json', import.meta.url), 'utf8')) as { folders: Folder[]; cases: Case[] };
const dir = llamaTokenizerDir();
const modelBytes = new Uint8Array(readFileSync(join(dir, 'tokenizer.model')));
const specialTokensMapJson = readFileSync(join(dir, 'special_tokens_map.json'), 'utf8');

function folderTokenizer(folder: Folder): Tokenizer {
  return tokenizerFromFiles({
    tokenizerModel: modelBytes,
    tokenizerConfigJson: JSON.stringify(folder.config),
    specialTokensMapJson,
    ...(folder.addedTokensJson === undefined ? {} : { addedTokensJson: JSON.stringify(folder.addedTokensJson) }),
  });
}

const casesOf = (folder: Folder): Case[] => fixture.cases.filter((c) => c.folder === folder.name);

describe("added tokens in text as transformers' LlamaTokenizerFast finds them (a folder with tokenizer.model)", () => {
  for (const folder of fixture.folders) {
    it(`${folder.name}: ids, and decode with and without skipSpecialTokens`, () => {
      const tok = folderTokenizer(folder);
      assert.equal(tok.vocabSize, 32008);
      for (const c of casesOf(folder)) {
        assert.deepEqual(tok.encode(c.text, { addBos: false, addEos: false }), c.fastIds, JSON.stringify(c.text));
        assert.deepEqual(tok.encode(c.text), [1, ...c.fastIds], `with BOS: ${JSON.stringify(c.text)}`);
        assert.equal(tok.decode(c.fastIds), c.fastDecoded.plain, `decode of ${JSON.stringify(c.text)}`);
        assert.equal(tok.decode(c.fastIds, { skipSpecialTokens: true }), c.fastDecoded.skipSpecialTokens, `decode skipping special tokens of ${JSON.stringify(c.text)}`);
        const stream = tok.createStreamDecoder();
        assert.equal(c.fastIds.map((id) => stream.push(id)).join('') + stream.flush(), c.fastDecoded.plain, `stream of ${JSON.stringify(c.text)}`);
      }
    });
  }

  it("finds a normalized added token after other characters under legacy false but, under legacy true, only where a '▁' is before it (the start or a space), as the tokenizers library matches '▁<med_5>'", () => {
    const byName = (name: string) => fixture.folders.find((f) => f.name === name) as Folder;
    const legacy = folderTokenizer(byName('added_tokens.json, legacy true'));
    const notLegacy = folderTokenizer(byName('added_tokens.json, legacy false'));
    assert.ok(!legacy.encode('x<med_5>y', { addBos: false }).includes(32005));
    assert.ok(notLegacy.encode('x<med_5>y', { addBos: false }).includes(32005));
    assert.deepEqual(legacy.encode('a <med_5>', { addBos: false }), [263, 32005]);
    // transformers' slow LlamaTokenizer (use_fast=False) cuts it out of the text wherever it occurs.
    const slow = fixture.cases.find((c) => c.folder === 'added_tokens.json, legacy true' && c.text === 'x<med_5>y');
    assert.deepEqual(slow?.slowIds, [921, 32005, 343]);
  });
});

describe('added tokens of a tokenizer.json, run by @huggingface/tokenizers', () => {
  // The tokenizer.json that LlamaTokenizerFast.save_pretrained writes for each folder: LlamaConverter's (the shipped one
  // under legacy; no normalizer and a Metaspace pre-tokenizer without) with the added tokens in added_tokens.
  const shipped = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
  const metaspace = { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false } };
  const converted = (folder: Folder): HfTokenizer => {
    const special = new Set(['<s>', '</s>', '<unk>', ...((folder.config.additional_special_tokens as string[] | undefined) ?? [])]);
    const decoder = folder.config.added_tokens_decoder as Record<string, Record<string, unknown>> | undefined;
    const added =
      decoder === undefined
        ? Object.entries(folder.addedTokensJson ?? {}).map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special.has(content), special: special.has(content) }))
        : Object.entries(decoder).map(([id, t]) => ({ ...t, id: Number(id), special: t.special === true || special.has(t.content as string) }));
    const json = { ...shipped, ...(folder.config.legacy === false ? metaspace : {}), added_tokens: [...shipped.added_tokens, ...added] };
    return HfTokenizer.fromJson(json, folder.config);
  };

  for (const folder of fixture.folders) {
    it(`${folder.name}: the same ids and decoded text as transformers`, () => {
      const tok = converted(folder);
      for (const c of casesOf(folder)) {
        assert.deepEqual(tok.encode(c.text, { addBos: false }), c.fastIds, JSON.stringify(c.text));
        assert.equal(tok.decode(c.fastIds), c.fastDecoded.plain, `decode of ${JSON.stringify(c.text)}`);
        assert.equal(tok.decode(c.fastIds, { skipSpecialTokens: true }), c.fastDecoded.skipSpecialTokens, `decode skipping special tokens of ${JSON.stringify(c.text)}`);
      }
    });
  }

  it('encodes random text with added tokens as the tokenizer.model folder does (both follow LlamaTokenizerFast)', () => {
    const pieces = ['<med_5>', '<med_6>', '<med_1>', '<med_2>', '<med_3>', '<med_4>', '<s>', '</s>', ' ', '  ', 'x', 'ab', '\u2581', '病人', '\n', '<med_', '>'];
    const text = fc.array(fc.constantFrom(...pieces), { maxLength: 10 }).map((p) => p.join(''));
    for (const folder of fixture.folders) {
      const json = converted(folder);
      const model = folderTokenizer(folder);
      fc.assert(
        fc.property(text, (t) => {
          assert.deepEqual(json.encode(t, { addBos: false }), model.encode(t, { addBos: false }), `${folder.name}: ${JSON.stringify(t)}`);
        }),
        { numRuns: 200 },
      );
    }
  });
});

describe("special_tokens_map.json and added_tokens.json, read as transformers' from_pretrained reads them", () => {
  const shippedConfig = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const folder = (files: Record<string, string | Uint8Array>): string => {
    const f = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
    for (const [name, contents] of Object.entries(files)) writeFileSync(join(f, name), contents);
    return f;
  };
  // An older save (transformers before 4.34) after `tokenizer.pad_token = tokenizer.eos_token`: the pad token is only in special_tokens_map.json.
  const padIsEos = JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: '</s>' });

  it('takes the pad token of special_tokens_map.json beside tokenizer.json when tokenizer_config.json has no added_tokens_decoder', async () => {
    const tok = await loadTokenizer(folder({ 'tokenizer.json': readFileSync(join(dir, 'tokenizer.json')), 'tokenizer_config.json': JSON.stringify(shippedConfig), 'special_tokens_map.json': padIsEos }));
    assert.ok(tok instanceof HfTokenizer);
    assert.equal(tok.padId, 2);
  });

  it('reads neither file when tokenizer_config.json has added_tokens_decoder (as transformers 4.34 and later write it), with tokenizer.model or tokenizer.json', async () => {
    const decoder = Object.fromEntries(['<unk>', '<s>', '</s>'].map((content, id) => [String(id), { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }]));
    const config = JSON.stringify({ ...shippedConfig, added_tokens_decoder: decoder });
    const older = { 'tokenizer_config.json': config, 'special_tokens_map.json': padIsEos, 'added_tokens.json': JSON.stringify({ '<extra>': 32000 }) };
    const fromModel = await loadTokenizer(folder({ ...older, 'tokenizer.model': modelBytes }));
    assert.equal(fromModel.vocabSize, 32000);
    assert.equal(fromModel.padId, 0);
    assert.ok(!fromModel.encode('a<extra>').includes(32000));
    const fromJson = await loadTokenizer(folder({ ...older, 'tokenizer.json': readFileSync(join(dir, 'tokenizer.json')) }));
    assert.equal(fromJson.padId, 0);
  });
});
