// Linear regression on the GPU: fit y = 3x - 2 + noise with AdamW.
// Run: node --conditions=source --import tsx examples/regression.ts
import { AdamW, initWebGPU, randn, tidy, zeros } from '@huatuo/tensor';

await initWebGPU();
const x = randn([256, 1], { seed: 1 });
const y = tidy(() => x.mul(3).sub(2).add(randn([256, 1], { seed: 2 }).mul(0.1)));
const w = zeros([1, 1], { requiresGrad: true });
const b = zeros([1], { requiresGrad: true });
const opt = new AdamW([w, b], { lr: 0.1, weightDecay: 0 });

for (let step = 1; step <= 200; step++) {
  const loss = tidy(() => {
    const err = x.matmul(w).add(b).sub(y);
    const l = err.mul(err).mean();
    l.backward();
    return l;
  });
  opt.step();
  opt.zeroGrad();
  if (step % 20 === 0) console.log(`step ${step}: loss ${(await loss.item()).toFixed(4)}`);
  loss.dispose();
}
console.log(`w = ${(await w.item()).toFixed(3)}, b = ${(await b.item()).toFixed(3)}`);
