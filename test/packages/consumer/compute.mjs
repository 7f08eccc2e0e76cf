// A first program with the installed packages: a matmul and its gradients on WebGPU against the CPU
// reference, int8 quantization on worker threads against the calling thread's, and the data files
// the packages ship (LLaMA's tokenizer, the knowledge graph, the demo records).
import assert from 'node:assert/strict';
import {
  backward, initWebGPU, matmul, mul, openQuantizePool, quantizeHost, refMatmul, refMatmulBackward, refTensor, sum, tensor, toArray,
} from '@huatuo/tensor';
import { llamaTokenizerDir, loadTokenizer } from '@huatuo/llama';
import { loadShippedGraph } from '@huatuo/kg';
import { DEMO_DATA_PATH, loadRecords } from '@huatuo/sft';

function assertClose(got, want, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 + 1e-4 * Math.abs(want[i]), `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

const info = await initWebGPU();
const values = (n, seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.31 + i * 1.37));
const [M, K, N] = [5, 7, 3];
const a = tensor(values(M * K, 1), [M, K], { requiresGrad: true });
const b = tensor(values(K * N, 2), [K, N], { requiresGrad: true });
const c = matmul(a, b);
backward(sum(mul(c, c)));
const refA = refTensor(values(M * K, 1), [M, K]);
const refB = refTensor(values(K * N, 2), [K, N]);
const refC = refMatmul(refA, refB);
const [refGradA, refGradB] = refMatmulBackward(refA, refB, refTensor(refC.data.map((x) => 2 * x), refC.shape));
assertClose(await toArray(c), refC.data, 'matmul');
assertClose(await toArray(a.grad), refGradA.data, 'grad of a');
assertClose(await toArray(b.grad), refGradB.data, 'grad of b');

const pool = openQuantizePool(2);
const w = values(64 * 96, 3);
const onThreads = await pool.quantize(w.slice(), 64, 96, 'int8');
await pool.close();
const onCaller = quantizeHost(w, 64, 96, 'int8');
assert.deepEqual([onThreads.codes, onThreads.absmax], [onCaller.codes, onCaller.absmax], 'int8 codes from the worker threads');

const tokenizer = await loadTokenizer(llamaTokenizerDir());
const text = '头痛怎么办？ Take rest.';
assert.equal(tokenizer.decode(tokenizer.encode(text, { addBos: false })), text, 'the shipped LLaMA tokenizer round trip');
const graph = await loadShippedGraph();
assert.ok(graph.entities.length > 0 && graph.skipped.length === 0, 'the shipped knowledge graph loads whole');
const demo = await loadRecords(DEMO_DATA_PATH);
assert.ok(demo.records.length > 0, 'the demo records load');

console.log(JSON.stringify({ adapter: info.adapterName, entities: graph.entities.length, demoRecords: demo.records.length }));
