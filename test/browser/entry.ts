// Browser entry of the bundle test: opens WebGPU in the page, runs matmul + backward + AdamW steps
// on data handed in by the test, and returns what it computed for comparison in Node.
import { AdamW, initWebGPU, tensor, tidy } from '@huatuo/tensor';

/** Inputs: x [M, K], w [K, N] (trained), target [M, N], row-major. */
export interface BrowserCheckInput {
  M: number;
  K: number;
  N: number;
  x: number[];
  w: number[];
  target: number[];
  steps: number;
  lr: number;
}

export interface BrowserCheckResult {
  adapter: string;
  features: string[];
  /** Loss before each step. */
  losses: number[];
  /** Gradient of w at the first step. */
  firstGrad: number[];
  /** w after all the steps. */
  w: number[];
}

async function runTensorCheck(input: BrowserCheckInput): Promise<BrowserCheckResult> {
  const info = await initWebGPU();
  const x = tensor(input.x, [input.M, input.K]);
  const target = tensor(input.target, [input.M, input.N]);
  const w = tensor(input.w, [input.K, input.N], { requiresGrad: true });
  const opt = new AdamW([w], { lr: input.lr });
  const losses: number[] = [];
  let firstGrad: number[] = [];
  for (let s = 0; s < input.steps; s++) {
    const loss = tidy(() => {
      const d = x.matmul(w).sub(target); // [M, N]
      const l = d.mul(d).mean();
      l.backward();
      return l;
    });
    losses.push(await loss.item());
    loss.dispose();
    if (s === 0) firstGrad = [...(await w.grad!.toArray())];
    opt.step();
    opt.zeroGrad();
  }
  const result = { adapter: info.adapterName, features: [...info.features], losses, firstGrad, w: [...(await w.toArray())] };
  for (const t of [x, target, w]) t.dispose();
  opt.dispose();
  return result;
}

(globalThis as { runTensorCheck?: typeof runTensorCheck }).runTensorCheck = runTensorCheck;
