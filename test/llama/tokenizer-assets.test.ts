import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import llamaTokenizer from 'llama-tokenizer-js';
import { llamaTokenizerDir } from '@huatuo/llama';
import { LLAMA_TOKENIZER_ASSETS, llamaTokenizerFiles } from '../../scripts/make-llama-tokenizer.ts';

describe('shipped LLaMA tokenizer files', () => {
  it('are byte for byte what scripts/make-llama-tokenizer.ts writes', () => {
    assert.equal(llamaTokenizerDir(), LLAMA_TOKENIZER_ASSETS);
    const files = llamaTokenizerFiles();
    assert.equal(files.size, 4);
    for (const [name, data] of files) {
      const shipped = new Uint8Array(readFileSync(join(LLAMA_TOKENIZER_ASSETS, name)));
      assert.ok(Buffer.compare(shipped, data) === 0, `${name} differs from the script's output; run node --import tsx scripts/make-llama-tokenizer.ts`);
    }
  });

  it("hold llama-tokenizer-js's vocabulary and merges in its order", () => {
    const json = JSON.parse(readFileSync(join(LLAMA_TOKENIZER_ASSETS, 'tokenizer.json'), 'utf8')) as {
      model: { vocab: Record<string, number>; merges: string[] };
    };
    assert.equal(Object.keys(json.model.vocab).length, llamaTokenizer.vocabById.length);
    llamaTokenizer.vocabById.forEach((piece, id) => assert.equal(json.model.vocab[piece], id, piece));
    assert.deepEqual(json.model.merges, [...llamaTokenizer.merges.keys()]);
  });
});
