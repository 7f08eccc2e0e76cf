// Which special tokens encode adds around a text, as transformers' fast tokenizers decide it with
// add_special_tokens=True: tokenizer.json's post_processor (the Rust tokenizers library's processors),
// or for a LlamaTokenizer config the template LlamaTokenizerFast.update_post_processor builds.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { HfTokenizer, TokenizerError, llamaTokenizerDir } from '@huatuo/llama';

// A vocabulary of two characters and six special tokens: "Hi" encodes to [0, 1] without special tokens.
const SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<cls>', '<sep>', '<a>', '<b>'];
const [BEGIN, END, CLS, SEP, A, B] = [2, 3, 4, 5, 6, 7];

function tokenizerJson(postProcessor: unknown): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: SPECIALS.map((content, i) => ({ id: 2 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false, vocab: { H: 0, i: 1 }, merges: [] },
  };
}

/** A TemplateProcessing as the tokenizers library writes it, from "<x> $A <y>"-style pieces. */
function template(single: string[]): Record<string, unknown> {
  const specialTokens: Record<string, unknown> = {};
  for (const name of single) if (name !== '$A') specialTokens[name] = { id: name, ids: [2 + SPECIALS.indexOf(name)], tokens: [name] };
  return {
    type: 'TemplateProcessing',
    single: single.map((name) => (name === '$A' ? { Sequence: { id: 'A', type_id: 0 } } : { SpecialToken: { id: name, type_id: 0 } })),
    pair: [],
    special_tokens: specialTokens,
  };
}

const byteLevel = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
// Meta-Llama-3's tokenizer_config.json settings that matter here.
const LLAMA3_CONFIG = { bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>', clean_up_tokenization_spaces: true, tokenizer_class: 'PreTrainedTokenizerFast' };

describe("encode's special tokens come from tokenizer.json's post_processor", () => {
  it("Llama 3's Sequence of ByteLevel and a TemplateProcessing with <|begin_of_text|> puts that first, and addBos/addEos still decide", () => {
    for (const post of [template(['<|begin_of_text|>', '$A']), { type: 'Sequence', processors: [byteLevel, template(['<|begin_of_text|>', '$A'])] }]) {
      const tok = HfTokenizer.fromJson(tokenizerJson(post), LLAMA3_CONFIG);
      assert.deepEqual(tok.encode('Hi'), [BEGIN, 0, 1]);
      assert.deepEqual(tok.encode(''), [BEGIN]);
      assert.deepEqual(tok.encode('Hi', { addBos: false }), [0, 1]);
      assert.deepEqual(tok.encode('Hi', { addEos: true }), [BEGIN, 0, 1, END]);
      assert.deepEqual([tok.bosId, tok.eosId, tok.hasBos], [BEGIN, END, true]);
    }
  });

  it("a TemplateProcessing's special tokens after $A go last, with the ids its special_tokens give", () => {
    const post = template(['<cls>', '$A', '<sep>', '<|end_of_text|>']);
    const tok = HfTokenizer.fromJson(tokenizerJson(post), LLAMA3_CONFIG);
    assert.deepEqual(tok.encode('Hi'), [CLS, 0, 1, SEP, END]);
    assert.deepEqual(tok.encode('Hi', { addEos: false }), [CLS, 0, 1, SEP], 'addEos false leaves out the EOS the template puts last');
    assert.deepEqual(tok.encode('Hi', { addBos: true }), [BEGIN, CLS, 0, 1, SEP, END]);
    // The ids are the template's, not the vocabulary's: a file whose special_tokens map "<cls>" to another id uses that id.
    (post.special_tokens as Record<string, { ids: number[] }>)['<cls>']!.ids = [A, B];
    assert.deepEqual(HfTokenizer.fromJson(tokenizerJson(post), LLAMA3_CONFIG).encode('Hi'), [A, B, 0, 1, SEP, END]);
  });

  it('a null post_processor and a ByteLevel one add nothing (GPT-2, Qwen2)', () => {
    for (const post of [null, byteLevel]) {
      const tok = HfTokenizer.fromJson(tokenizerJson(post), LLAMA3_CONFIG);
      assert.deepEqual(tok.encode('Hi'), [0, 1], JSON.stringify(post));
      assert.deepEqual(tok.encode(''), []);
      assert.deepEqual(tok.encode('Hi', { addBos: true, addEos: true }), [BEGIN, 0, 1, END]);
    }
  });

  it("a Sequence applies its processors in turn, each wrapping the last one's output", () => {
    const post = { type: 'Sequence', processors: [template(['<a>', '$A', '<sep>']), byteLevel, template(['<b>', '$A', '<|end_of_text|>'])] };
    assert.deepEqual(HfTokenizer.fromJson(tokenizerJson(post), LLAMA3_CONFIG).encode('Hi'), [B, A, 0, 1, SEP, END]);
  });

  it('RobertaProcessing and BertProcessing put cls first and sep last', () => {
    for (const type of ['RobertaProcessing', 'BertProcessing']) {
      const post = { type, cls: ['<cls>', CLS], sep: ['<sep>', SEP], trim_offsets: true, add_prefix_space: false };
      assert.deepEqual(HfTokenizer.fromJson(tokenizerJson(post), LLAMA3_CONFIG).encode('Hi'), [CLS, 0, 1, SEP], type);
    }
  });

  it('a post_processor it cannot read is an error naming the file and the type', () => {
    assert.throws(
      () => HfTokenizer.fromJson(tokenizerJson({ type: 'Whatever' }), LLAMA3_CONFIG, 'model/tokenizer.json'),
      (e: unknown) => e instanceof TokenizerError && /^model\/tokenizer\.json: .*Whatever/.test(e.message),
    );
    assert.throws(
      () => HfTokenizer.fromJson(tokenizerJson({ type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<x>', type_id: 0 } }], special_tokens: {} }), LLAMA3_CONFIG),
      /uses "<x>" in single, but its special_tokens give it no ids/,
    );
  });
});

describe('a tokenizer without BOS token', () => {
  const config = { ...LLAMA3_CONFIG, bos_token: null };

  it('loads when bos_token is null, or absent with no "<s>" in the vocabulary; addBos true and bosId are errors naming tokenizer_config.json', () => {
    const { bos_token: _, ...absent } = config;
    for (const cfg of [config, absent]) {
      const tok = HfTokenizer.fromJson(tokenizerJson(byteLevel), cfg, 'qwen/tokenizer.json');
      assert.equal(tok.hasBos, false);
      assert.deepEqual(tok.encode('Hi'), [0, 1]);
      assert.deepEqual(tok.encode('Hi', { addBos: false, addEos: true }), [0, 1, END]);
      assert.throws(() => tok.encode('Hi', { addBos: true }), (e: unknown) => e instanceof TokenizerError && e.file === 'qwen/tokenizer_config.json' && /addBos is true but this tokenizer has no BOS token/.test(e.message));
      const reason = 'bos_token' in cfg ? 'has bos_token null' : 'names no bos_token and the vocabulary has no "<s>"';
      assert.throws(() => tok.bosId, (e: unknown) => e instanceof TokenizerError && e.message.includes(`qwen/tokenizer_config.json ${reason}`));
    }
  });

  it('a LlamaTokenizer config with bos_token null and add_bos_token unset or true is refused at load, as LlamaTokenizerFast refuses it', () => {
    const llama = readFileSync(`${llamaTokenizerDir()}/tokenizer.json`, 'utf8');
    for (const extra of [{}, { add_bos_token: true }]) {
      assert.throws(
        () => HfTokenizer.fromJson(llama, { tokenizer_class: 'LlamaTokenizer', bos_token: null, ...extra }, 'llama/tokenizer.json'),
        (e: unknown) => e instanceof TokenizerError && e.file === 'llama/tokenizer_config.json' && /add_bos_token is .* but bos_token is null; set add_bos_token to false/.test(e.message),
      );
    }
    const tok = HfTokenizer.fromJson(llama, { tokenizer_class: 'LlamaTokenizer', bos_token: null, add_bos_token: false, add_eos_token: true });
    assert.deepEqual(tok.encode('Hello'), [15043, 2]);
    assert.equal(tok.hasBos, false);
  });
});
