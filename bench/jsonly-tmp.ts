// Host cost without GPU execution: encoding goes to Dawn (mode 'dawn') or stops before Dawn's pass calls
// (mode 'js'); nothing is submitted, reads return zeros.
import { destroyWebGPU, initWebGPU } from '@huatuo/tensor';
import { getRuntime } from '@huatuo/tensor/internal';
import { generate } from '@huatuo/llama';
import { createRandomLlama } from '@huatuo/llama';
import { hostDecodeConfig } from './host.bench.js';
process.env.HUATUO_MATMUL_TUNE ??= '0';
const mode = process.argv[2] ?? 'dawn';
await initWebGPU();
const model = createRandomLlama(hostDecodeConfig(), { seed: 1 });
const prompt = [1, 450, 4996, 17354, 1701, 29916, 432, 17204];
await generate(model, null, [prompt], { maxNewTokens: 8, eosTokenIds: [] });
const rt = getRuntime() as any;
rt.read = async (_b: GPUBuffer, _o: number, bytes: number) => new ArrayBuffer(bytes);
rt.sync = async () => {};
const enc = rt.device.createCommandEncoder();
const fakePass = { setPipeline() {}, setBindGroup() {}, dispatchWorkgroups() {}, end() {} };
rt.device.queue.submit = () => {};
if (mode === 'js') {
  rt.device.createCommandEncoder = () => ({ beginComputePass: () => fakePass, finish: () => ({}), copyBufferToBuffer() {} });
  rt.device.queue.writeBuffer = () => {};
}
const N = 48;
const res: number[] = [];
for (let rep = 0; rep < 15; rep++) {
  let first = 0, last = 0, k = 0;
  await generate(model, null, [prompt], { maxNewTokens: N + 1, eosTokenIds: [], onToken: () => { k++; if (k === 1) first = performance.now(); if (k === N + 1) last = performance.now(); } });
  res.push(((last - first) * 1000) / N);
}
const d = rt.counters.dispatches;
res.sort((a, b) => a - b);
console.log(`${mode}: us/token min ${res[0]!.toFixed(0)} median ${res[7]!.toFixed(0)}; us/dispatch (76/token) min ${(res[0]! / 76).toFixed(1)} median ${(res[7]! / 76).toFixed(1)}`);
process.exit(0);
