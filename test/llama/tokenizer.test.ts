import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import llamaTokenizer from 'llama-tokenizer-js';
import {
  HfTokenizer,
  SentencePieceTokenizer,
  TokenizerError,
  loadTokenizer,
  llamaTokenizerDir,
  parseSentencePieceModel,
  writeSentencePieceModel,
  PieceType,
  type SentencePieceModel,
} from '@huatuo/llama';
import { both, hf, mixedText, oracle, sp } from '../fixtures/tokenizer/llama-tokenizers.ts';

describe('LLaMA tokenizer through both file formats', () => {
  it("encodes 'the' as [1, 278], the ids llama-tokenizer-js gives", () => {
    assert.deepEqual(llamaTokenizer.encode('the'), [1, 278]);
    for (const [name, tok] of both) assert.deepEqual(tok.encode('the'), [1, 278], name);
  });

  it("encodes 'This is 🦙.cpp' as Meta's SentencePiece tokenizer does (byte pieces for the emoji)", () => {
    // Ids printed by Meta's own tokenizer.model for this text (llama.cpp issue 167).
    const meta = [1, 910, 338, 29871, 243, 162, 169, 156, 29889, 8223];
    for (const [name, tok] of both) assert.deepEqual(tok.encode('This is 🦙.cpp'), meta, name);
  });

  it('has LLaMA special ids: bos 1, eos 2, pad 0 (unk, as HuaTuo pads) and 32000 ids', () => {
    for (const [name, tok] of both) {
      assert.equal(tok.bosId, 1, name);
      assert.equal(tok.eosId, 2, name);
      assert.equal(tok.padId, 0, name);
      assert.equal(tok.vocabSize, 32000, name);
      for (const id of [0, 1, 2, 3, 13, 259, 278, 29871, 31999]) {
        assert.equal(tok.idToPiece(id), llamaTokenizer.vocabById[id], `${name} id ${id}`);
        assert.equal(tok.pieceToId(tok.idToPiece(id)), id, `${name} piece of id ${id}`);
      }
    }
  });

  it('gives the same ids as llama-tokenizer-js on mixed Chinese/English/whitespace/emoji text', () => {
    fc.assert(
      fc.property(mixedText, (text) => {
        const expected = oracle(text);
        for (const [name, tok] of both) assert.deepEqual(tok.encode(text), expected, `${name} on ${JSON.stringify(text)}`);
      }),
      { numRuns: 400 },
    );
  });

  it('gives the same ids as llama-tokenizer-js on arbitrary Unicode text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), (text) => {
        // Hugging Face splits out special-token text such as '<s>' (tested below); SentencePiece does not.
        fc.pre(!/<unk>|<s>|<\/s>/.test(text));
        const expected = oracle(text);
        for (const [name, tok] of both) assert.deepEqual(tok.encode(text), expected, `${name} on ${JSON.stringify(text)}`);
      }),
      { numRuns: 300 },
    );
  });

  it('adds BOS only when asked and EOS only when asked', () => {
    fc.assert(
      fc.property(mixedText, fc.boolean(), fc.boolean(), (text, addBos, addEos) => {
        const body = oracle(text).slice(1);
        const expected = [...(addBos ? [1] : []), ...body, ...(addEos ? [2] : [])];
        for (const [name, tok] of both) assert.deepEqual(tok.encode(text, { addBos, addEos }), expected, name);
      }),
      { numRuns: 100 },
    );
  });

  it('encodes the empty string as BOS alone, or nothing without BOS', () => {
    for (const [name, tok] of both) {
      assert.deepEqual(tok.encode(''), [1], name);
      assert.deepEqual(tok.encode('', { addBos: false }), [], name);
      assert.equal(tok.decode([]), '', name);
    }
  });

  it('reads special-token text as the special token through both formats, as transformers does', () => {
    // SentencePiece alone (and llama-tokenizer-js) would read '<s>' as characters; transformers splits out special tokens.
    assert.notDeepEqual(llamaTokenizer.encode('<s>a'), [1, 1, ...hf.encode('a', { addBos: false })]);
    for (const [name, tok] of both) assert.deepEqual(tok.encode('<s>a</s>'), [1, 1, ...hf.encode('a', { addBos: false }), 2], name);
  });

  it('decodes encoded text back to the text, with and without special tokens', () => {
    // '▁' in text is encoded as the space piece, so it decodes as ' ' (as in SentencePiece); it is left out here.
    fc.assert(
      fc.property(mixedText.filter((t) => !t.includes('\u2581')), fc.boolean(), (text, addEos) => {
        for (const [name, tok] of both) {
          const ids = tok.encode(text, { addEos });
          assert.equal(tok.decode(ids, { skipSpecialTokens: true }), text, `${name} on ${JSON.stringify(text)}`);
          const withSpecials = (text.length > 0 ? '<s> ' : '<s>') + text + (addEos ? '</s>' : '');
          assert.equal(tok.decode(ids), withSpecials, `${name} keeps special tokens of ${JSON.stringify(text)}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('decodes like llama-tokenizer-js on the ids it encodes', () => {
    fc.assert(
      fc.property(mixedText, (text) => {
        const ids = oracle(text);
        for (const [name, tok] of both) assert.equal(tok.decode(ids, { skipSpecialTokens: true }), llamaTokenizer.decode(ids), name);
      }),
      { numRuns: 200 },
    );
  });

  it('streams text whose concatenation equals the full decode and never emits U+FFFD for valid text', () => {
    fc.assert(
      fc.property(mixedText, fc.boolean(), (text, skipSpecialTokens) => {
        for (const [name, tok] of both) {
          const ids = tok.encode(text, { addEos: true });
          const stream = tok.createStreamDecoder({ skipSpecialTokens });
          const outputs = ids.map((id) => stream.push(id));
          outputs.push(stream.flush());
          for (const out of outputs) assert.ok(!out.includes('\uFFFD'), `${name} emitted U+FFFD for ${JSON.stringify(text)}`);
          assert.equal(outputs.join(''), tok.decode(ids, { skipSpecialTokens }), `${name} on ${JSON.stringify(text)}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('holds back the bytes of a character encoded as byte pieces until the character is complete', () => {
    const char = '饕';
    for (const [name, tok] of both) {
      const ids = tok.encode(char, { addBos: false });
      const pieces = ids.map((id) => tok.idToPiece(id));
      const bytePieces = pieces.filter((p) => /^<0x[0-9A-F]{2}>$/.test(p));
      assert.equal(bytePieces.length, new TextEncoder().encode(char).length, `${name}: ${char} is encoded as ${pieces.join(' ')}`);
      const stream = tok.createStreamDecoder();
      const outputs = ids.map((id) => stream.push(id));
      assert.deepEqual(outputs.slice(-3), ['', '', char], name);
      assert.equal(stream.flush(), '', name);
    }
  });

  it('flushes an incomplete character as U+FFFD and starts afresh', () => {
    for (const [name, tok] of both) {
      const first = tok.pieceToId('<0xE9>') as number;
      const stream = tok.createStreamDecoder();
      assert.equal(stream.push(first), '', name);
      assert.equal(stream.flush(), '\uFFFD', name);
      const hello = tok.encode('Hello', { addBos: false });
      assert.equal(hello.map((id) => stream.push(id)).join('') + stream.flush(), 'Hello', name);
    }
  });

  it('rejects ids outside the vocabulary with TokenizerError', () => {
    for (const [name, tok] of both) {
      assert.throws(() => tok.decode([1, 32000]), TokenizerError, name);
      assert.throws(() => tok.createStreamDecoder().push(-1), TokenizerError, name);
      assert.throws(() => tok.idToPiece(1.5), TokenizerError, name);
    }
  });
});

describe('SentencePiece model file', () => {
  it('reads back every field that it writes', () => {
    const piece = fc.record({
      piece: fc.string({ minLength: 1, maxLength: 6 }),
      score: fc.float({ noNaN: true }).map(Math.fround),
      type: fc.constantFrom(...Object.values(PieceType)),
    }).map((p) => ({ ...p }));
    fc.assert(
      fc.property(
        fc.uniqueArray(piece, { minLength: 1, maxLength: 20, selector: (p) => p.piece }),
        fc.record({
          modelType: fc.integer({ min: 1, max: 4 }),
          byteFallback: fc.boolean(),
          unkId: fc.integer({ min: -1, max: 100 }),
          bosId: fc.integer({ min: -1, max: 100 }),
          eosId: fc.integer({ min: -1, max: 100 }),
          padId: fc.integer({ min: -1, max: 100 }),
          normalizerName: fc.string({ maxLength: 10 }),
          addDummyPrefix: fc.boolean(),
          removeExtraWhitespaces: fc.boolean(),
          escapeWhitespaces: fc.boolean(),
        }),
        (pieces, spec) => {
          const model: SentencePieceModel = { pieces, ...spec, precompiledCharsmapLength: 0 };
          assert.deepEqual(parseSentencePieceModel(writeSentencePieceModel(model)), model);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("gives LLaMA's pieces the types of Meta's file and scores that fall with merge order", () => {
    const model = sp.model;
    assert.equal(model.pieces[0]?.type, PieceType.UNKNOWN);
    assert.equal(model.pieces[1]?.type, PieceType.CONTROL);
    assert.equal(model.pieces[2]?.type, PieceType.CONTROL);
    for (let id = 3; id < 259; id++) assert.equal(model.pieces[id]?.type, PieceType.BYTE, `id ${id}`);
    assert.ok(model.byteFallback && model.addDummyPrefix && !model.removeExtraWhitespaces);
    assert.equal(model.modelType, 2);
    // Meta's scores fall with id for ordinary pieces; '▁t' (260) outranks 'er' (261).
    assert.ok((model.pieces[260]?.score as number) > (model.pieces[261]?.score as number));
  });

  it("ignores the model's remove_extra_whitespaces and add_dummy_prefix as transformers' LlamaConverter does; add_prefix_space false omits the prefix", () => {
    const model = { ...sp.model, removeExtraWhitespaces: true, addDummyPrefix: false };
    const tok = new SentencePieceTokenizer(model);
    assert.equal(tok.normalize('  a   b  '), '\u2581\u2581\u2581a\u2581\u2581\u2581b\u2581\u2581');
    assert.deepEqual(tok.encode('  the  '), sp.encode('  the  '));
    const noPrefix = new SentencePieceTokenizer(model, 'tokenizer.model', { add_prefix_space: false });
    // 'Hello' 10994, '▁Hello' 15043, '▁world' 3186.
    assert.deepEqual(tok.encode('Hello world', { addBos: false }), [15043, 3186]);
    assert.deepEqual(noPrefix.encode('Hello world', { addBos: false }), [10994, 3186]);
  });
});

describe('loading tokenizer files', () => {
  const assets = llamaTokenizerDir();

  function folderWith(files: Record<string, string | Uint8Array>): string {
    const dir = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
    for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
    return dir;
  }

  it('prefers tokenizer.json and falls back to tokenizer.model', async () => {
    const withJson = await loadTokenizer(assets);
    assert.ok(withJson instanceof HfTokenizer);
    const dir = folderWith({});
    copyFileSync(join(assets, 'tokenizer.model'), join(dir, 'tokenizer.model'));
    const withModel = await loadTokenizer(dir);
    assert.ok(withModel instanceof SentencePieceTokenizer);
    assert.deepEqual(withModel.encode('患者 the 😀'), withJson.encode('患者 the 😀'));
  });

  it('names the folder when it has no tokenizer file', async () => {
    const dir = folderWith({ 'config.json': '{}' });
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof TokenizerError && e.message.includes(dir) && /tokenizer\.json/.test(e.message));
  });

  it('names tokenizer.json when it is not JSON or has no model', async () => {
    for (const content of ['{"model": {"type": "BPE", "vocab": ', '[1, 2]', '{"version": "1.0"}']) {
      const dir = folderWith({ 'tokenizer.json': content });
      await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof TokenizerError && e.message.includes(join(dir, 'tokenizer.json')), content);
    }
  });

  it('names tokenizer.model when it is truncated or not a ModelProto', async () => {
    const good = new Uint8Array(readFileSync(join(assets, 'tokenizer.model')));
    const cases = [good.subarray(0, Math.floor(good.length / 2) + 1), new TextEncoder().encode('{"not": "a model"}'), new Uint8Array(0)];
    for (const bytes of cases) {
      const dir = folderWith({ 'tokenizer.model': bytes });
      await assert.rejects(
        loadTokenizer(dir),
        (e: unknown) => e instanceof TokenizerError && e.message.includes(join(dir, 'tokenizer.model')),
        `${bytes.length} bytes`,
      );
    }
  });

  it('refuses a SentencePiece model that is not BPE', () => {
    const bytes = writeSentencePieceModel({ ...sp.model, modelType: 1 });
    assert.throws(() => SentencePieceTokenizer.fromBytes(bytes), (e: unknown) => e instanceof TokenizerError && /model_type is 1/.test(e.message));
  });
});
