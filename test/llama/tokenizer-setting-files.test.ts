// A bos_token null against add_bos_token, a missing eos_token, or a bad entry of added_tokens_decoder is reported against
// the file it was read from: tokenizer_config.json, or special_tokens_map.json, which transformers' from_pretrained reads
// into the settings when tokenizer_config.json has no added_tokens_decoder. (A special token named that is not in the
// vocabulary is added, as transformers adds it: tokenizer-special-added.test.ts.)
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HfTokenizer, TokenizerError, llamaTokenizerDir, loadTokenizer, tokenizerFromFiles, type TokenizerFiles } from '@huatuo/llama';
import { tokenizerJson } from './pattern-tokenizers.js';

const dir = llamaTokenizerDir();
const shippedConfig = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

function folder(files: Record<string, string | Uint8Array>): string {
  const f = mkdtempSync(join(tmpdir(), 'huatuo-tokenizer-'));
  for (const [name, contents] of Object.entries(files)) writeFileSync(join(f, name), contents);
  return f;
}

/** Loading `f` fails with a TokenizerError about `file` of `f` whose message begins with its path and matches `pattern`. */
async function rejectsNaming(f: string, file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(loadTokenizer(f), (e: unknown) => {
    assert.ok(e instanceof TokenizerError, String(e));
    assert.equal(e.file, join(f, file), e.message);
    assert.ok(e.message.startsWith(`${join(f, file)}: `), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('errors about special and added tokens name the file the value came from', () => {
  const files = {
    json: { 'tokenizer.json': readFileSync(join(dir, 'tokenizer.json')) },
    model: { 'tokenizer.model': readFileSync(join(dir, 'tokenizer.model')) },
  };

  for (const [kind, tokenizer] of Object.entries(files)) {
    it(`an entry of added_tokens_decoder without an integer id (a folder with ${kind === 'json' ? 'tokenizer.json' : 'tokenizer.model'})`, async () => {
      const bad = JSON.stringify({ ...shippedConfig, added_tokens_decoder: { x: { content: '<m>', special: false } } });
      await rejectsNaming(folder({ ...tokenizer, 'tokenizer_config.json': bad }), 'tokenizer_config.json', /added_tokens_decoder\["x"\] is .*expected an integer id mapped to \{ "content": \.\.\. \}; fix it in /);
    });
  }
  const config = JSON.stringify(shippedConfig);

  it("add_bos_token of tokenizer_config.json against the bos_token null of special_tokens_map.json names both files", async () => {
    const map = JSON.stringify({ bos_token: null, eos_token: '</s>', unk_token: '<unk>' });
    const f = folder({ ...files.json, 'tokenizer_config.json': config, 'special_tokens_map.json': map });
    await rejectsNaming(f, 'tokenizer_config.json', new RegExp(`add_bos_token is true but ${join(f, 'special_tokens_map.json').replace(/[.\\/]/g, '\\$&')} has bos_token null`));
  });

  it('a tokenizer.json without "</s>" and no eos_token named points to eos_token of tokenizer_config.json', () => {
    assert.throws(
      () => HfTokenizer.fromJson(tokenizerJson({}), {}, 'm/tokenizer.json'),
      (e: unknown) => e instanceof TokenizerError && e.file === 'm/tokenizer_config.json' && /^m\/tokenizer\.json: has no "<\/s>".*name the model's token in eos_token of m\/tokenizer_config\.json/.test(e.message),
    );
  });
});

describe('a setting nested too deeply to write back is refused naming its file', () => {
  // JSON.parse reads it; JSON.stringify's stack overflows on it (a bare RangeError naming no file).
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const dir = llamaTokenizerDir();
  const model = new Uint8Array(readFileSync(join(dir, 'tokenizer.model')));
  const json = readFileSync(join(dir, 'tokenizer.json'), 'utf8');
  const cases: [string, string, TokenizerFiles][] = [
    ['add_bos_token beside tokenizer.model', 'tokenizer_config.json', { tokenizerModel: model, tokenizerConfigJson: `{"add_bos_token": ${deep}}` }],
    ['an added_tokens_decoder entry beside tokenizer.json', 'tokenizer_config.json', { tokenizerJson: json, tokenizerConfigJson: `{"added_tokens_decoder": {"5": ${deep}}}` }],
    ['an added_tokens_decoder entry beside tokenizer.model', 'tokenizer_config.json', { tokenizerModel: model, tokenizerConfigJson: `{"added_tokens_decoder": {"5": ${deep}}}` }],
    ['an id of added_tokens.json', 'added_tokens.json', { tokenizerJson: json, addedTokensJson: `{"<x>": ${deep}}` }],
  ];
  for (const [what, file, files] of cases) {
    it(what, () => {
      assert.throws(
        () => tokenizerFromFiles(files),
        (e: unknown) => e instanceof TokenizerError && e.file === file && e.message.startsWith(`${file}: `) && e.message.includes('an array nested too deeply to show'),
      );
    });
  }
});
