// The regular expressions of a tokenizer.json run on untrusted text: patterns that could backtrack for a time
// exponential in the text are refused at load, the patterns of real tokenizers run, and added tokens are matched
// as written, never as patterns.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { HfTokenizer, llamaTokenizerDir, loadTokenizer, tokenizerFromFiles } from '@huatuo/llama';
import { CONFIG, deepSeekStyleTokenizerJson as json, split, tokenizerJson } from './pattern-tokenizers.js';

const FILE = 'model/tokenizer.json';
const replace = (pattern: string, content: string) => ({ type: 'Replace', pattern: { Regex: pattern }, content });

function refusal(...words: string[]) {
  return (e: unknown) => {
    assert.ok(e instanceof Error && e.name === 'TokenizerError', String(e));
    for (const w of [FILE, ...words]) assert.ok(e.message.includes(w), `"${e.message}" should mention ${w}`);
    return true;
  };
}

describe("the regular expressions of a tokenizer.json", () => {
  // On a JavaScript RegExp (a+)+$ tries 2^n ways on n a's followed by another character: 40 a's take days. The
  // tokenizer is built and run in a child process killed after 30 s, which fails the test instead of hanging it.
  it('refuses a pattern that backtracks catastrophically at load, so a crafted text cannot hang encoding', { timeout: 60_000 }, () => {
    const script = `
      import { HfTokenizer } from '@huatuo/llama';
      let result;
      try {
        const tok = HfTokenizer.fromJson(${JSON.stringify(tokenizerJson({ pre_tokenizer: split('(a+)+$') }))}, ${JSON.stringify(CONFIG)}, ${JSON.stringify(FILE)});
        result = tok.encode('a'.repeat(40) + '!');
      } catch (e) {
        result = e.name + ': ' + e.message;
      }
      process.stdout.write(JSON.stringify(result));`;
    const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
    const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
    const message = JSON.parse(out) as string;
    assert.match(message, /^TokenizerError: model\/tokenizer\.json: pre_tokenizer\.pattern\.Regex is "\(a\+\)\+\$"/);
    assert.match(message, /original tokenizer\.json/);
  });

  it('refuses nested, trailing-context and look-around patterns in normalizers, pre-tokenizers and decoders, naming where each is', () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, replace('(?:a|a)*b', 'x')] } }, 'normalizer.normalizers[1].pattern.Regex', '(?:a|a)*b'],
      [{ pre_tokenizer: { type: 'Sequence', pretokenizers: [split(' ?\\p{L}+'), split('\\s+$')] } }, 'pre_tokenizer.pretokenizers[1].pattern.Regex', '\\\\s+$'],
      [{ pre_tokenizer: replace('(x?){40}x{40}', '') }, 'pre_tokenizer.pattern.Regex', 'more than 10000 ways'],
      [{ decoder: { type: 'Sequence', decoders: [replace('a+(?=b)', 'c')] } }, 'decoder.decoders[0].pattern.Regex', 'look-around'],
      [{ pre_tokenizer: split('(a)\\1+') }, 'pre_tokenizer.pattern.Regex', 'backreference'],
    ];
    for (const [parts, path, word] of cases) {
      assert.throws(() => HfTokenizer.fromJson(tokenizerJson(parts), CONFIG, FILE), refusal(path, word));
    }
  });

  it('refuses a part, a pattern or a model nested too deeply to walk or write back, naming the file and the field', () => {
    // JSON.parse reads a list 100000 deep; walking it for patterns, or JSON.stringify, overflowed the stack (a bare RangeError).
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    const cases: [Record<string, unknown>, string, string][] = [
      [{ normalizer: deep }, 'normalizer', 'more than 100 levels deep'],
      [{ pre_tokenizer: { type: 'Sequence', pretokenizers: deep } }, 'pre_tokenizer', 'more than 100 levels deep'],
      [{ decoder: deep }, 'decoder', 'more than 100 levels deep'],
      [{ pre_tokenizer: { type: 'Split', pattern: { Regex: deep }, behavior: 'Isolated', invert: false } }, 'pre_tokenizer.pattern.Regex', 'an array nested too deeply to show'],
    ];
    for (const [parts, field, word] of cases) {
      assert.throws(() => HfTokenizer.fromJson(tokenizerJson(parts), CONFIG, FILE), refusal(field, word));
    }
    assert.throws(() => HfTokenizer.fromJson({ ...tokenizerJson({}), model: deep }, CONFIG, FILE), refusal('"model"', 'an array nested too deeply to show'));
    // The deepest a tokenizer nests is a few Sequences: 30 still load.
    let nested: Record<string, unknown> = { type: 'NFC' };
    for (let i = 0; i < 30; i++) nested = { type: 'Sequence', normalizers: [nested] };
    assert.equal(HfTokenizer.fromJson(tokenizerJson({ normalizer: nested }), CONFIG, FILE).vocabSize, HfTokenizer.fromJson(tokenizerJson({}), CONFIG, FILE).vocabSize);
  });

  it("runs the pre-tokenizer patterns of GPT-2, Llama 3, Qwen2, GPT-4o and Mistral NeMo tokenizers, and patterns of bounded alternatives ending in one repeated class", () => {
    const known = [
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      // GPT-4o's (tiktoken's o200k_base) and Mistral NeMo's (Tekken), as their tokenizer.json write them.
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ];
    for (const pattern of known) {
      assert.deepEqual(HfTokenizer.fromJson(tokenizerJson({ pre_tokenizer: split(pattern) }), CONFIG, FILE).encode('ab  x!'), [0, 1, 5, 5, 2, 4]);
    }
    // ' {2,}' squeezes runs of spaces; then each alternative is one class repeated.
    const squeezed = HfTokenizer.fromJson(tokenizerJson({ normalizer: replace(' {2,}', ' '), pre_tokenizer: split('[ab]+|[xy]+| ?[^ab\\s]+') }), CONFIG, FILE);
    assert.deepEqual(squeezed.encode('ab   xy !'), [0, 1, 5, 2, 3, 5, 4]);
  });
});

describe('--trust-tokenizer-patterns (trustTokenizerPatterns)', () => {
  // DeepSeek LLM's pre-tokenizer is a Sequence of Splits, one of them \s+$ (see deepSeekStyleTokenizerJson).
  const texts = ['x  ', 'x  y', 'ab  x  ', ' ab !', 'x(  ab)+  ', '  a  b  ', 'yx \n x  1  '];

  it('refuses an original pattern not known to run in linear time unless trusted, and the refusal names the flag, the option and the risk', () => {
    assert.throws(
      () => HfTokenizer.fromJson(json(), CONFIG, FILE),
      refusal('pre_tokenizer.pretokenizers[3].pattern.Regex', '\\\\s+$', '--trust-tokenizer-patterns', 'trustTokenizerPatterns', 'trust', 'hours'),
    );
  });

  it('loads the trusted tokenizer through fromJson, tokenizerFromFiles and loadTokenizer, encoding as @huggingface/tokenizers does', async () => {
    const library = new HfLibTokenizer(json(), { ...CONFIG, clean_up_tokenization_spaces: false });
    const dir = mkdtempSync(join(tmpdir(), 'trust-patterns-'));
    try {
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json()));
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(CONFIG));
      await assert.rejects(loadTokenizer(dir), (e: Error) => e.name === 'TokenizerError' && e.message.startsWith(join(dir, 'tokenizer.json')) && e.message.includes('--trust-tokenizer-patterns'));
      const tokenizers = [
        HfTokenizer.fromJson(json(), CONFIG, FILE, { trustTokenizerPatterns: true }),
        tokenizerFromFiles({ tokenizerJson: JSON.stringify(json()), tokenizerConfigJson: JSON.stringify(CONFIG) }, 'model', { trustTokenizerPatterns: true }),
        await loadTokenizer(dir, { trustTokenizerPatterns: true }),
      ];
      for (const tok of tokenizers) {
        // \s+$ makes the spaces at the end a piece of their own: x, then "  " (without it "x " and " ").
        assert.deepEqual(tok.encode('x  '), [2, 12]);
        for (const text of texts) assert.deepEqual(tok.encode(text), library.encode(text, { add_special_tokens: false }).ids, text);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('added and special tokens', () => {
  const dir = llamaTokenizerDir();
  const tokens = { '32000': '(a+)+', '32001': '[.*' };
  it('are matched as written in the text, never as regular expressions, through tokenizer.json and tokenizer.model', () => {
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
    for (const [id, content] of Object.entries(tokens)) {
      json.added_tokens.push({ id: Number(id), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    }
    const config = { added_tokens_decoder: Object.fromEntries(Object.entries(tokens).map(([id, content]) => [id, { content, special: true, normalized: false }])) };
    const fromJson = HfTokenizer.fromJson(json);
    const fromModel = tokenizerFromFiles({ tokenizerModel: new Uint8Array(readFileSync(join(dir, 'tokenizer.model'))), tokenizerConfigJson: JSON.stringify(config) }, dir);
    for (const tok of [fromJson, fromModel]) {
      const ids = tok.encode('x(a+)+y[.*aaa(aa)', { addBos: false });
      assert.deepEqual(ids.filter((id) => id >= 32000), [32000, 32001], JSON.stringify(ids));
      assert.deepEqual(tok.encode('aaaa[.*[.*', { addBos: false }), [...tok.encode('aaaa', { addBos: false }), 32001, 32001]);
    }
    assert.deepEqual(fromJson.encode('x(a+)+y[.*aaa(aa)'), fromModel.encode('x(a+)+y[.*aaa(aa)'));
  });
});
