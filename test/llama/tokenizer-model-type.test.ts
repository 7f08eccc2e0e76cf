// The tokenizer class that transformers 4.57.6's AutoTokenizer takes from config.json where tokenizer_config.json names
// none, and eos_token null with add_eos_token true: test/fixtures/tokenizer/model-type-defaults.json, from
// scripts/fixtures/make-tokenizer-model-type-fixture.py (the real transformers and tokenizers libraries).
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TokenizerError, loadTokenizer, tokenizerFromFiles } from '@huatuo/llama';
import { checkAgainstTransformers, filesOf, type Folder } from './tokenizer-fixture-folders.js';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/model-type-defaults.json', import.meta.url), 'utf8')) as { folders: Folder[] };
const erring = (start: string): Folder[] => fixture.folders.filter((f) => f.error?.startsWith(start) === true);

describe("the tokenizer class of config.json where tokenizer_config.json names none, as transformers' AutoTokenizer takes it", () => {
  for (const folder of fixture.folders.filter((f) => f.error === undefined)) {
    it(`${folder.name} (${folder.source}): len(tokenizer), added tokens, special ids, ids and decoded text`, () => {
      checkAgainstTransformers(tokenizerFromFiles(filesOf(folder)), folder);
    });
  }

  for (const folder of [...erring('OSError: It looks like the config file'), ...erring('TypeError: list indices')]) {
    it(`${folder.name} (${folder.source}): refused naming config.json, where transformers raises ${folder.error?.split(':')[0]}`, () => {
      const expected = folder.modelConfig === '[]' ? /^m\/config\.json: expected a JSON object, got an array, read for the tokenizer class/ : /^m\/config\.json: not valid JSON \(.*\), read for the tokenizer class/;
      assert.throws(() => tokenizerFromFiles(filesOf(folder), 'm'), (e: unknown) => e instanceof TokenizerError && e.file === 'm/config.json' && expected.test(e.message));
    });
  }

  for (const folder of erring('UnicodeDecodeError')) {
    it(`${folder.name}: refused, as transformers cannot build Qwen2TokenizerFast from tokenizer.model`, () => {
      const file = folder.modelConfig === undefined ? 'm/tokenizer_config.json' : 'm/config.json';
      const source = folder.modelConfig === undefined ? 'm/tokenizer_config.json names the tokenizer class Qwen2Tokenizer' : 'm/config.json, whose model_type is "qwen2", names the tokenizer class Qwen2TokenizerFast';
      assert.throws(
        () => tokenizerFromFiles(filesOf(folder), 'm'),
        (e: unknown) => e instanceof TokenizerError && e.file === file && e.message.startsWith(`m/tokenizer.model: ${source}, which transformers builds from tokenizer.json`),
      );
    });
  }

  it('loadTokenizer reads config.json beside a tokenizer_config.json that names no class', async () => {
    const folder = fixture.folders.find((f) => f.name.startsWith('tokenizer_config.json without tokenizer_class, config.json of model_type llama, a vocabulary') && f.source === 'tokenizer.json') as Folder;
    const files = filesOf(folder);
    const dir = mkdtempSync(join(tmpdir(), 'model-type-'));
    try {
      writeFileSync(join(dir, 'tokenizer.json'), files.tokenizerJson as string);
      writeFileSync(join(dir, 'tokenizer_config.json'), files.tokenizerConfigJson as string);
      writeFileSync(join(dir, 'config.json'), files.modelConfigJson as string);
      checkAgainstTransformers(await loadTokenizer(dir), folder);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('eos_token null, as LlamaTokenizerFast reads it', () => {
  for (const folder of erring('ValueError: add_eos_token = True but eos_token = None')) {
    it(`${folder.name} (${folder.source}): refused naming tokenizer_config.json, as LlamaTokenizerFast refuses it`, () => {
      assert.throws(
        () => tokenizerFromFiles(filesOf(folder), 'm'),
        (e: unknown) => e instanceof TokenizerError && e.file === 'm/tokenizer_config.json' && e.message === 'm/tokenizer_config.json: add_eos_token is true but eos_token is null; set add_eos_token to false or name the EOS token in eos_token',
      );
    });
  }
});
