// @huatuo/tensor in a browser: the package bundled by esbuild for the browser (no Node built-ins,
// no Dawn bindings) runs matmul, backward and AdamW in headless Chromium's WebGPU, and the
// results match a CPU reference computed here.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { refAdamWState, refAdamWStep } from '@huatuo/tensor';
import { assertClose, seededValues } from '../tensor/helpers.js';
import type { BrowserCheckInput, BrowserCheckResult } from './entry.js';
import { openScriptPage, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

const here = dirname(fileURLToPath(import.meta.url));

async function bundle(): Promise<{ code: string; inputs: string[] }> {
  const result = await build({
    entryPoints: [join(here, 'entry.ts')],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    conditions: ['source', 'browser'],
    metafile: true,
    logLevel: 'silent',
  });
  return { code: result.outputFiles[0]!.text, inputs: Object.keys(result.metafile.inputs) };
}

/** The same steps on the CPU: loss = mean((x w - target)^2), dL/dw = x^T 2 (x w - target) / (M N), then AdamW. */
function cpuReference(input: BrowserCheckInput): { losses: number[]; firstGrad: Float64Array; w: Float64Array } {
  const { M, K, N } = input;
  const w = Float64Array.from(input.w);
  const state = refAdamWState(K * N);
  const losses: number[] = [];
  let firstGrad = new Float64Array(0);
  for (let s = 0; s < input.steps; s++) {
    const grad = new Float64Array(K * N);
    let loss = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let y = 0;
        for (let k = 0; k < K; k++) y += input.x[m * K + k]! * w[k * N + n]!;
        const d = y - input.target[m * N + n]!;
        loss += (d * d) / (M * N);
        for (let k = 0; k < K; k++) grad[k * N + n] = grad[k * N + n]! + (input.x[m * K + k]! * 2 * d) / (M * N);
      }
    }
    losses.push(loss);
    if (s === 0) firstGrad = Float64Array.from(grad);
    refAdamWStep(w, grad, state, { lr: input.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  }
  return { losses, firstGrad, w };
}

test('the browser bundle of @huatuo/tensor has no node: imports and no webgpu (Dawn) package code', async () => {
  const { code, inputs } = await bundle();
  assert.ok(inputs.some((p) => p.endsWith('packages/tensor/src/platform/browser.ts')), `#platform did not resolve to browser.ts: ${inputs.join(', ')}`);
  assert.ok(!inputs.some((p) => p.endsWith('platform/node.ts')), 'the bundle includes platform/node.ts');
  const dawn = inputs.filter((p) => /node_modules\/webgpu\//.test(p));
  assert.deepEqual(dawn, [], 'the bundle includes the webgpu package');
  const nodeImports = code.match(/(?:from\s*|import\s*\(\s*|require\s*\(\s*)["']node:[^"']*["']/g) ?? [];
  assert.deepEqual(nodeImports, [], 'the bundle imports Node built-ins');
  // Self-contained: nothing left for the browser to resolve (a bare 'fs' or 'path' would fail there too).
  assert.deepEqual(code.match(/^\s*import\s[^;]*from\s*["'][^"']+["']/gm) ?? [], [], 'the bundle has unresolved imports');
});

test(
  'in headless Chromium the bundled package runs matmul, backward and AdamW on WebGPU and matches the CPU reference',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 120_000 },
  async () => {
    const { code } = await bundle();
    const { tab, errors, close } = await openScriptPage(code, 'tensor', 'tensor-chromium-', 'runTensorCheck');
    try {
      const [M, K, N] = [5, 7, 3];
      const input: BrowserCheckInput = {
        M, K, N,
        x: [...seededValues(M * K, 21)],
        w: [...seededValues(K * N, 22, 0.5)],
        target: [...seededValues(M * N, 23)],
        steps: 3,
        lr: 0.05,
      };
      const got = await tab.evaluate(
        (inp) => (globalThis as unknown as { runTensorCheck(i: typeof inp): Promise<BrowserCheckResult> }).runTensorCheck(inp),
        input,
      );
      assert.deepEqual(errors, [], 'page errors');
      const want = cpuReference(input);
      const what = `Chromium (${got.adapter})`;
      assertClose(got.losses, want.losses, { atol: 1e-6, rtol: 1e-5 }, `${what} losses`);
      assertClose(got.firstGrad, want.firstGrad, { atol: 1e-6, rtol: 1e-5 }, `${what} first gradient`);
      assertClose(got.w, want.w, { atol: 2e-6, rtol: 1e-5 }, `${what} w after ${input.steps} AdamW steps`);
    } finally {
      await close();
    }
  },
);
