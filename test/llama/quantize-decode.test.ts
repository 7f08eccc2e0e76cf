// Greedy decoding with a quantized base (int8, NF4): the matrix-vector kernels and the tiled ones give the
// same tokens, and NF4 decoding dispatches no separate absmax decode after the prompt.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, Profiler } from '@huatuo/tensor';
import { setQuantizedDecode, type QuantizedDecodePath } from '@huatuo/tensor/internal';
import { generate, loadLlama } from '@huatuo/llama';
import { fixtureDir } from './fixtures.js';

await initWebGPU();
after(() => setQuantizedDecode(null));

for (const format of ['int8', 'nf4'] as const) {
  test(`greedy decoding with an ${format} base: the matrix-vector and the tiled kernels pick the same tokens`, async () => {
    const model = await loadLlama(fixtureDir('gqa'), { quantize: format });
    const run = async (path: QuantizedDecodePath) => {
      setQuantizedDecode(path);
      const p = new Profiler();
      p.start();
      const out = await generate(model, null, [[1, 5, 9, 2], [3, 4]], { maxNewTokens: 6 });
      const report = await p.stop();
      return { tokens: out.map((o) => o.tokens), absmax: report.kernels.find((k) => k.label === 'quantizedMatmul (absmax)')?.count ?? 0 };
    };
    const matvec = await run('matvec');
    const tiled = await run('tiled');
    assert.deepEqual(matvec.tokens, tiled.tokens);
    if (format === 'nf4') {
      // Six forwards: the prompt's (8 rows, the tiled kernels decoding their absmaxes first), then 5 of 2 rows.
      assert.equal(tiled.absmax, 6 * matvec.absmax, `absmax dispatches: matvec ${matvec.absmax}, tiled ${tiled.absmax}`);
    }
    model.dispose();
  });
}
