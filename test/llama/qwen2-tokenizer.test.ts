// A tiny tokenizer.json with the components Qwen2's byte-level BPE tokenizer.json uses (NFC normalizer; a Split
// pre-tokenizer with Qwen2's regex, Isolated, then ByteLevel without its own regex; ByteLevel decoder; BPE without
// byte fallback; <|im_start|> and friends as special added tokens): the ids worked out by hand from its merges.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HfTokenizer, TokenizerError, loadTokenizer } from '@huatuo/llama';
import { QWEN2_TOKENIZER_CONFIG, qwen2TokenizerJson as qwen2StyleJson } from './qwen2-tokenizer-files.js';

// Qwen2-7B-Instruct's tokenizer_config.json in shape: no BOS token, and a ChatML chat template.
const CONFIG = QWEN2_TOKENIZER_CONFIG;

describe("a tokenizer.json with Qwen2's byte-level components", () => {
  const tok = HfTokenizer.fromJson(qwen2StyleJson(), CONFIG);

  it('splits with the regex, merges the byte-level pieces, and reads special tokens written in the text; no BOS is added', () => {
    // "Hello" | " world" | "'s" | " " | "1" | "2" | "\n\n" | <|im_end|>: a space before a digit stays alone, digits one by one.
    assert.deepEqual(tok.encode("Hello world's 12\n\n<|im_end|>"), [262, 264, 265, 220, 16, 17, 266, 269]);
    assert.deepEqual([tok.hasBos, tok.eosId, tok.padId], [false, 269, 267]);
  });

  it('normalizes to NFC: a decomposed é gives the ids of the composed one (its two UTF-8 bytes)', () => {
    const composed = tok.encode('café');
    assert.deepEqual(composed, [66, 64, 69, 127, 102]); // c a f, then Ã © (bytes C3 A9)
    assert.deepEqual(tok.encode('cafe\u0301'), composed);
  });

  it('decodes bytes back to text, whole or streamed (an incomplete character held back), special tokens kept or skipped', () => {
    const ids = [262, 264, 265, 220, 66, 64, 69, 127, 102, 266, 269];
    assert.equal(tok.decode(ids), "Hello world's café\n\n<|im_end|>");
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "Hello world's café\n\n");
    const stream = tok.createStreamDecoder();
    const parts = ids.map((id) => stream.push(id));
    assert.equal(parts[7], '', 'the first byte of é alone is not text yet');
    assert.equal(parts.join('') + stream.flush(), tok.decode(ids));
  });
});

describe('a Qwen2 model folder (tokenizer.json and a tokenizer_config.json with bos_token null)', () => {
  const folder = mkdtempSync(join(tmpdir(), 'qwen2-tokenizer-'));
  after(() => rmSync(folder, { recursive: true, force: true }));
  writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(qwen2StyleJson()));
  writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify(CONFIG, null, 2));

  it('loads, encodes without BOS (its ByteLevel post_processor adds nothing), and EOS only when asked', async () => {
    const tok = await loadTokenizer(folder);
    assert.equal(tok.hasBos, false);
    assert.deepEqual(tok.encode('Hello'), [262]);
    assert.deepEqual(tok.encode(''), []);
    assert.deepEqual(tok.encode('Hello', { addEos: true }), [262, 269]);
    assert.deepEqual(tok.encode('<|im_start|>user\nHello<|im_end|>'), [268, 84, 82, 68, 81, 198, 262, 269]);
  });

  it('refuses addBos true and bosId, naming its tokenizer_config.json', async () => {
    const tok = await loadTokenizer(folder);
    const configFile = join(folder, 'tokenizer_config.json');
    const named = (e: unknown): boolean => e instanceof TokenizerError && e.file === configFile && e.message.includes(configFile);
    assert.throws(() => tok.encode('Hello', { addBos: true }), named);
    assert.throws(() => tok.bosId, named);
  });
});
