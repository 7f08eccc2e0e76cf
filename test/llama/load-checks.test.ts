// loadLlama checks config.json against the weights' header before it lists or allocates anything:
// a config claiming far more layers than the weights hold is refused at once, naming both counts.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { loadLlama, SafetensorsError } from '@huatuo/llama';
import { fixtureDir } from './fixtures.js';

before(async () => {
  await initWebGPU();
});

test('a config.json with num_hidden_layers 1000000 over two layers of weights is refused naming both counts', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'llama-layers-')), 'gqa');
  cpSync(fixtureDir('gqa'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 1_000_000 }));
  await assert.rejects(loadLlama(dir), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, String(e));
    assert.match(e.message, /num_hidden_layers 1000000, but the weights hold 2 decoder layers \(model\.layers\.0 to model\.layers\.1\)/);
    assert.ok(e.message.includes(dir));
    return true;
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 1 }));
  await assert.rejects(loadLlama(dir), /num_hidden_layers 1, but the weights hold 2 decoder layers/);
});
