import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HfTokenizer, PieceType, SentencePieceTokenizer, loadTokenizer, llamaTokenizerDir, parseSentencePieceModel, tokenizerFromFiles, type Tokenizer } from '@huatuo/llama';

interface EncodeCase {
  config: Record<string, boolean>;
  text: string;
  ids: number[];
  withSpecialTokens: number[];
}
interface DecodeCase {
  config: Record<string, boolean>;
  ids: number[];
  skipSpecialTokens: boolean;
  text: string;
}
interface AddedTokenCase {
  config: Record<string, unknown>;
  text: string;
  ids: number[];
  decoded: string;
  decodedSkippingSpecial: string;
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/llama-legacy.json', import.meta.url), 'utf8')) as {
  encode: EncodeCase[];
  decode: DecodeCase[];
  addedTokens: AddedTokenCase[];
};
const dir = llamaTokenizerDir();
const modelBytes = new Uint8Array(readFileSync(join(dir, 'tokenizer.model')));
const tokenizers = new Map<string, Tokenizer>();

/** The tokenizer of a folder holding only tokenizer.model and a tokenizer_config.json of `config`. */
function modelFolder(config: Record<string, unknown>): Tokenizer {
  const key = JSON.stringify(config);
  let tok = tokenizers.get(key);
  if (tok === undefined) {
    tok = tokenizerFromFiles({ tokenizerModel: modelBytes, tokenizerConfigJson: key });
    tokenizers.set(key, tok);
  }
  return tok;
}

describe("transformers' LlamaTokenizerFast on a folder with only tokenizer.model (test/fixtures/tokenizer/llama-legacy.json, scripts/fixtures/make-tokenizer-legacy-fixture.py)", () => {
  it('encodes special tokens in text, spaces and the prefix after them as transformers does for every legacy and add_prefix_space setting', () => {
    for (const c of fixture.encode) {
      const tok = modelFolder(c.config);
      assert.deepEqual(tok.encode(c.text, { addBos: false, addEos: false }), c.ids, `${JSON.stringify(c.config)} on ${JSON.stringify(c.text)}`);
    }
  });

  it('puts BOS first and EOS last as add_bos_token and add_eos_token say when encode is not told', () => {
    for (const c of fixture.encode) {
      const tok = modelFolder(c.config);
      assert.deepEqual(tok.encode(c.text), c.withSpecialTokens, `${JSON.stringify(c.config)} on ${JSON.stringify(c.text)}`);
    }
  });

  it('decodes as transformers does under add_prefix_space, skip_special_tokens and clean_up_tokenization_spaces', () => {
    for (const c of fixture.decode) {
      const tok = modelFolder(c.config);
      const what = `${JSON.stringify(c.config)} skip ${c.skipSpecialTokens} on ${JSON.stringify(c.ids)}`;
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: c.skipSpecialTokens }), c.text, what);
      const stream = tok.createStreamDecoder({ skipSpecialTokens: c.skipSpecialTokens });
      assert.equal(c.ids.map((id) => stream.push(id)).join('') + stream.flush(), c.text, `stream of ${what}`);
    }
  });

  it("encodes and decodes added_tokens_decoder's tokens past the model's pieces: special or not, normalized or not, lstrip / rstrip", () => {
    for (const c of fixture.addedTokens) {
      const tok = modelFolder(c.config);
      const { added_tokens_decoder: _, ...settings } = c.config;
      const what = `${JSON.stringify(settings)} on ${JSON.stringify(c.text)}`;
      assert.equal(tok.vocabSize, 32004, what);
      assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, what);
      assert.equal(tok.decode(c.ids), c.decoded, `decode of ${what}`);
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decodedSkippingSpecial, `decode skipping special tokens of ${what}`);
    }
    const tok = modelFolder(fixture.addedTokens[0]?.config ?? {});
    assert.equal(tok.idToPiece(32003), '<<SYS>>');
    assert.equal(tok.pieceToId('[X]'), 32001);
  });

  it('gives the added-token ids that @huggingface/tokenizers gives on the tokenizer.json LlamaConverter would write for the folder', () => {
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
    const metaspace = { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false } };
    for (const c of fixture.addedTokens.filter((e) => e.config.add_prefix_space === undefined)) {
      const decoder = c.config.added_tokens_decoder as Record<string, Record<string, unknown>>;
      const added = Object.entries(decoder).map(([id, t]) => ({ ...t, id: Number(id) }));
      const converted = { ...json, ...(c.config.legacy === false ? metaspace : {}), added_tokens: [...json.added_tokens, ...added] };
      assert.deepEqual(HfTokenizer.fromJson(converted).encode(c.text, { addBos: false }), c.ids, `legacy ${c.config.legacy !== false} on ${JSON.stringify(c.text)}`);
    }
  });

  it('encodes a legacy folder as the shipped tokenizer.json (LlamaConverter with legacy true) does', () => {
    const hf = HfTokenizer.fromJson(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    for (const c of fixture.encode.filter((e) => Object.keys(e.config).length === 0)) {
      assert.deepEqual(hf.encode(c.text, { addBos: false }), c.ids, JSON.stringify(c.text));
    }
  });

  it('reads tokenizer_config.json beside tokenizer.model in a folder', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
    writeFileSync(join(folder, 'tokenizer.model'), modelBytes);
    writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ legacy: false, add_eos_token: true }));
    const tok = await loadTokenizer(folder);
    const expected = fixture.encode.find((c) => c.config.legacy === false && Object.keys(c.config).length === 1 && c.text === '<s>Hello');
    assert.ok(expected !== undefined);
    assert.deepEqual(tok.encode('<s>Hello'), [1, ...expected.ids, 2]);
  });

  it('builds from tokenizer.model when add_prefix_space is set, as LlamaTokenizerFast converts from the slow tokenizer then, and keeps tokenizer.json otherwise', async () => {
    const tokenizerJson = readFileSync(join(dir, 'tokenizer.json'));
    const folder = (config: Record<string, unknown>): Promise<Tokenizer> => {
      const f = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
      writeFileSync(join(f, 'tokenizer.json'), tokenizerJson);
      writeFileSync(join(f, 'tokenizer.model'), modelBytes);
      writeFileSync(join(f, 'tokenizer_config.json'), JSON.stringify(config));
      return loadTokenizer(f);
    };
    const ids = (config: Record<string, boolean>, text: string): number[] | undefined =>
      fixture.encode.find((c) => JSON.stringify(c.config) === JSON.stringify(config) && c.text === text)?.ids;
    const noPrefix = await folder({ legacy: true, add_prefix_space: false });
    assert.ok(noPrefix instanceof SentencePieceTokenizer);
    assert.deepEqual(noPrefix.encode('Hello</s> World', { addBos: false }), ids({ legacy: true, add_prefix_space: false }, 'Hello</s> World'));
    // legacy: false alone does not convert: tokenizer.json's own normalizer (the legacy one here) is used.
    const jsonKept = await folder({ legacy: false });
    assert.ok(jsonKept instanceof HfTokenizer);
    assert.deepEqual(jsonKept.encode('<s>Hello', { addBos: false }), ids({}, '<s>Hello'));
    assert.ok((await folder({ add_prefix_space: true, tokenizer_class: 'PreTrainedTokenizerFast' })) instanceof HfTokenizer);
  });

  it("loads a folder whose tokenizer_config.json gives empty token names (decapoda-research's LLaMA conversion) with the model's own BOS and EOS", () => {
    const config = { bos_token: '', eos_token: '', unk_token: '', model_max_length: 1e30, tokenizer_class: 'LLaMATokenizer' };
    const tok = tokenizerFromFiles({ tokenizerModel: modelBytes, tokenizerConfigJson: JSON.stringify(config) });
    assert.deepEqual(tok.encode('the', { addEos: true }), [1, 278, 2]);
  });

  it('reads added_tokens.json and special_tokens_map.json beside tokenizer.model as transformers does (an added [PAD] that is the pad token)', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
    writeFileSync(join(folder, 'tokenizer.model'), modelBytes);
    writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ pad_token: null, model_max_length: 512 }));
    writeFileSync(join(folder, 'special_tokens_map.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: '[PAD]' }));
    writeFileSync(join(folder, 'added_tokens.json'), JSON.stringify({ '[PAD]': 32000, '<extra>': 32001 }));
    const tok = await loadTokenizer(folder);
    assert.equal(tok.vocabSize, 32002);
    assert.equal(tok.padId, 32000);
    // '[PAD]' is special (not normalized): '▁a' 263 [PAD] '▁b' 289. '<extra>' is not special, so normalized:
    // under legacy it is matched as '▁<extra>', after a space or at the start.
    assert.deepEqual(tok.encode('a[PAD]b'), [1, 263, 32000, 289]);
    assert.deepEqual(tok.encode('a <extra>', { addBos: false }), [263, 32001]);
    assert.equal(tok.decode([1, 263, 32000, 289], { skipSpecialTokens: true }), 'a b');
    assert.equal(tok.decode([263, 32000, 32001]), 'a[PAD]<extra>');
  });

  it('names tokenizer_config.json and the setting when a setting has the wrong type', () => {
    assert.throws(
      () => tokenizerFromFiles({ tokenizerModel: modelBytes, tokenizerConfigJson: '{"legacy": "false"}' }, 'model-dir'),
      (e: unknown) => e instanceof Error && e.message.includes('model-dir/tokenizer_config.json') && e.message.includes('"legacy"'),
    );
  });

  it("reads a user-defined piece whole as LlamaConverter's added token (not special): the text after it gets its own prefix, and skipSpecialTokens keeps it", () => {
    const model = parseSentencePieceModel(modelBytes);
    const pieces = model.pieces.map((p) => (p.piece === 'Hello' ? { ...p, type: PieceType.USER_DEFINED } : p));
    const tok = new SentencePieceTokenizer({ ...model, pieces });
    // 'Hello' 10994, '▁a' 263, '▁b' 289; SentencePiece alone would give '▁a' 'Hello' 'b'.
    assert.deepEqual(tok.encode('aHellob', { addBos: false }), [263, 10994, 289]);
    assert.equal(tok.decode([1, 263, 10994, 289], { skipSpecialTokens: true }), 'aHello b');
  });

  const pieces = ['<s>', '</s>', '<unk>', ' ', '  ', '\n', 'a', 'Hello', ' world', '病人', '🦙', '\u2581', '.', ' .', " n't", " 's", " ' ", '?', ','];
  const text = fc.array(fc.constantFrom(...pieces), { maxLength: 12 }).map((p) => p.join(''));

  it("encodes with legacy false as @huggingface/tokenizers does on LlamaConverter's tokenizer.json for it (no normalizer, Metaspace prepend_scheme first)", () => {
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const converted = {
      ...json,
      normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
    };
    const hf = HfTokenizer.fromJson(converted);
    const tok = modelFolder({ legacy: false });
    fc.assert(
      fc.property(text, (t) => {
        assert.deepEqual(tok.encode(t, { addBos: false }), hf.encode(t, { addBos: false }), JSON.stringify(t));
      }),
      { numRuns: 300 },
    );
  });

  it('streams the same text as decode when clean_up_tokenization_spaces is on, wherever the ids split " ." and the like', () => {
    const tok = modelFolder({ clean_up_tokenization_spaces: true });
    fc.assert(
      fc.property(text, fc.boolean(), (t, skipSpecialTokens) => {
        const ids = tok.encode(t);
        const stream = tok.createStreamDecoder({ skipSpecialTokens });
        const streamed = ids.map((id) => stream.push(id)).join('') + stream.flush();
        assert.equal(streamed, tok.decode(ids, { skipSpecialTokens }), JSON.stringify(t));
      }),
      { numRuns: 300 },
    );
  });
});

describe('tokenizer.json folders and tokenizer_config.json', () => {
  const json = readFileSync(join(dir, 'tokenizer.json'), 'utf8');

  it('decode cleans up spaces as transformers does when clean_up_tokenization_spaces is true (as Llama 3 sets it), and streams the same text', () => {
    const ids = [739, 525, 29879, 1244, 1919, 338, 302, 29915, 29873, 372, 1577]; // "It 's here , is n't it ?"
    const expected = fixture.decode.find((c) => c.config.clean_up_tokenization_spaces === true && c.config.add_prefix_space === undefined && c.ids.join() === ids.join());
    assert.ok(expected !== undefined);
    for (const config of [{ clean_up_tokenization_spaces: true }, { clean_up_tokenization_spaces: true, tokenizer_class: 'PreTrainedTokenizerFast' }]) {
      const tok = HfTokenizer.fromJson(json, config);
      assert.equal(tok.decode(ids), expected.text, JSON.stringify(config));
      const stream = tok.createStreamDecoder();
      assert.equal(ids.map((id) => stream.push(id)).join('') + stream.flush(), expected.text, `stream, ${JSON.stringify(config)}`);
    }
    for (const config of [{}, { clean_up_tokenization_spaces: false }]) assert.equal(HfTokenizer.fromJson(json, config).decode(ids), "It 's here , is n't it ?");
  });

  it('puts BOS and EOS as a LLaMA tokenizer_config.json says (LlamaTokenizerFast.update_post_processor) when encode is not told', () => {
    const hello = HfTokenizer.fromJson(json).encode('Hello', { addBos: false });
    assert.deepEqual(HfTokenizer.fromJson(json, { add_bos_token: false, add_eos_token: true }).encode('Hello'), [...hello, 2]);
    assert.deepEqual(HfTokenizer.fromJson(json, { add_bos_token: false, add_eos_token: true }).encode('Hello', { addBos: true, addEos: false }), [1, ...hello]);
    assert.deepEqual(HfTokenizer.fromJson(json, {}).encode('Hello'), [1, ...hello]);
  });

  it("streams the first space when the tokenizer.json's decoder keeps it (LlamaConverter with add_prefix_space false has no Strip)", () => {
    const parsed = JSON.parse(json) as { decoder: { decoders: { type: string }[] } };
    parsed.decoder.decoders = parsed.decoder.decoders.filter((d) => d.type !== 'Strip');
    const tok = HfTokenizer.fromJson(parsed);
    const ids = [15043, 3186]; // ▁Hello ▁world
    assert.equal(tok.decode(ids), ' Hello world');
    const stream = tok.createStreamDecoder();
    assert.equal(ids.map((id) => stream.push(id)).join('') + stream.flush(), ' Hello world');
  });
});
