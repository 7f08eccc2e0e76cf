// A bad bos_token / eos_token, or a bad id of an added token, is reported against the file it was read from:
// tokenizer_config.json, or special_tokens_map.json and added_tokens.json, which transformers' from_pretrained reads
// into the settings when tokenizer_config.json has no added_tokens_decoder.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HfTokenizer, TokenizerError, llamaTokenizerDir, loadTokenizer } from '@huatuo/llama';
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
  const config = JSON.stringify(shippedConfig);

  for (const [kind, tokenizer] of Object.entries(files)) {
    it(`an eos_token of special_tokens_map.json that is not in the vocabulary (a folder with ${kind === 'json' ? 'tokenizer.json' : 'tokenizer.model'})`, async () => {
      const map = JSON.stringify({ bos_token: '<s>', eos_token: '<|eot|>', unk_token: '<unk>' });
      await rejectsNaming(folder({ ...tokenizer, 'tokenizer_config.json': config, 'special_tokens_map.json': map }), 'special_tokens_map.json', /eos_token "<\|eot\|>"/);
    });

    it(`a bos_token of tokenizer_config.json that is not in the vocabulary, beside a special_tokens_map.json without one (${kind === 'json' ? 'tokenizer.json' : 'tokenizer.model'})`, async () => {
      const map = JSON.stringify({ eos_token: '</s>', unk_token: '<unk>' });
      const bad = JSON.stringify({ ...shippedConfig, bos_token: '<bos>' });
      await rejectsNaming(folder({ ...tokenizer, 'tokenizer_config.json': bad, 'special_tokens_map.json': map }), 'tokenizer_config.json', /bos_token "<bos>"/);
    });
  }

  it('a token of added_tokens.json whose id is not the next free one (a folder with tokenizer.model)', async () => {
    const f = folder({ ...files.model, 'tokenizer_config.json': config, 'added_tokens.json': JSON.stringify({ '<med_0>': 32005 }) });
    await rejectsNaming(f, 'added_tokens.json', /"<med_0>" has id 32005.*next free id is 32000; fix its id in .*added_tokens\.json/);
  });

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
