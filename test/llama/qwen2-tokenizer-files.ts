// A tiny byte-level BPE tokenizer with the components Qwen2's tokenizer.json uses (NFC normalizer; a Split
// pre-tokenizer with Qwen2's regex, Isolated, then ByteLevel without its own regex; ByteLevel post-processor and
// decoder; BPE without byte fallback; <|endoftext|>, <|im_start|>, <|im_end|> as special added tokens), and a
// tokenizer_config.json shaped like Qwen2-7B-Instruct's (bos_token null, eos <|im_end|>, pad <|endoftext|>, its
// ChatML chat_template), its ids moved to this 270-id vocabulary.

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

/** Ids of the special tokens. */
export const ENDOFTEXT = 267;
export const IM_START = 268;
export const IM_END = 269;
export const VOCAB_SIZE = 270;

/** The tokenizer.json: GPT-2's 256 byte pieces, 11 merges (ids 256-266), then the three special tokens. */
export function qwen2TokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  for (const piece of byteLevelAlphabet()) vocab[piece] = Object.keys(vocab).length;
  for (const m of MERGES) vocab[m.replace(' ', '')] = Object.keys(vocab).length; // 256 ... 266
  const special = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'].map((content, i) => ({
    id: ENDOFTEXT + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
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

/** Qwen2-7B-Instruct's chat_template. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const addedToken = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });

/** Qwen2-7B-Instruct's tokenizer_config.json in shape, its ids moved to this vocabulary. */
export const QWEN2_TOKENIZER_CONFIG = {
  add_prefix_space: false,
  added_tokens_decoder: { [ENDOFTEXT]: addedToken('<|endoftext|>'), [IM_START]: addedToken('<|im_start|>'), [IM_END]: addedToken('<|im_end|>') },
  additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
  bos_token: null,
  chat_template: CHATML_TEMPLATE,
  clean_up_tokenization_spaces: false,
  eos_token: '<|im_end|>',
  errors: 'replace',
  model_max_length: 32768,
  pad_token: '<|endoftext|>',
  split_special_tokens: false,
  tokenizer_class: 'Qwen2Tokenizer',
  unk_token: null,
};
