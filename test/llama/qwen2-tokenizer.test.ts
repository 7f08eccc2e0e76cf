// A tiny tokenizer.json with the components Qwen2's byte-level BPE tokenizer.json uses (NFC normalizer; a Split
// pre-tokenizer with Qwen2's regex, Isolated, then ByteLevel without its own regex; ByteLevel decoder; BPE without
// byte fallback; <|im_start|> and friends as special added tokens): the ids worked out by hand from its merges.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HfTokenizer, TokenizerError, loadTokenizer } from '@huatuo/llama';

/** GPT-2's byte-to-character table: the 256 pieces of a byte-level vocabulary, in their id order. */
function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (const [a, b] of [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]] as const) for (let c = a; c <= b; c++) printable.push(c);
  const out = printable.map((c) => String.fromCodePoint(c));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) out.push(String.fromCodePoint(256 + n++));
  return out;
}

// Qwen2's pre-tokenizer regex, as its tokenizer.json writes it.
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const MERGES = ['Ġ w', 'o r', 'Ġw or', 'l l', 'H e', 'He ll', 'Hell o', 'l d', 'Ġwor ld', "' s", 'Ċ Ċ'];
const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };

function qwen2StyleJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  for (const piece of byteLevelAlphabet()) vocab[piece] = Object.keys(vocab).length;
  for (const m of MERGES) vocab[m.replace(' ', '')] = Object.keys(vocab).length; // 256 ... 266
  const special = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'].map((content, i) => ({
    id: 267 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special,
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false }, byteLevel] },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab, merges: MERGES,
    },
  };
}

const addedToken = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });
// Qwen2-7B-Instruct's tokenizer_config.json in shape (its ids moved to this vocabulary): no BOS token, and a
// ChatML chat template.
const CONFIG = {
  add_prefix_space: false,
  added_tokens_decoder: { 267: addedToken('<|endoftext|>'), 268: addedToken('<|im_start|>'), 269: addedToken('<|im_end|>') },
  additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
  bos_token: null,
  chat_template:
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
  clean_up_tokenization_spaces: false,
  eos_token: '<|im_end|>',
  errors: 'replace',
  model_max_length: 32768,
  pad_token: '<|endoftext|>',
  split_special_tokens: false,
  tokenizer_class: 'Qwen2Tokenizer',
  unk_token: null,
};

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
