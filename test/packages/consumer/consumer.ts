// A consumer's TypeScript against the installed packages' declarations: names from each package,
// WebGPU's types through @huatuo/tensor, and misuses the declarations must refuse (were a
// declaration missing, its names would be `any` and the expected errors would not occur).
import { initWebGPU, matmul, tensor, toArray, type DeviceInfo, type Tensor } from '@huatuo/tensor';
import { getRuntime } from '@huatuo/tensor/internal';
import { loadTokenizer, llamaTokenizerDir, type Tokenizer } from '@huatuo/llama';
import { DEMO_DATA_PATH, loadRecords } from '@huatuo/sft';
import { loadShippedGraph } from '@huatuo/kg';

const info: DeviceInfo = await initWebGPU();
const product: Tensor = matmul(tensor(new Float32Array(6), [2, 3]), tensor(new Float32Array(3), [3, 1]));
const buffer: GPUBuffer = product.buffer();
const device: GPUDevice = getRuntime().device;
const tokenizer: Tokenizer = await loadTokenizer(llamaTokenizerDir());
const ids: number[] = tokenizer.encode('头痛怎么办？');
const records: number = (await loadRecords(DEMO_DATA_PATH)).records.length;
const entities: number = (await loadShippedGraph()).entities.length;
console.log(info.adapterName, await toArray(product), buffer.size, device.label, ids, records, entities);

// @ts-expect-error matmul multiplies tensors, not numbers
matmul(1, 2);
// @ts-expect-error loadTokenizer takes a folder's path
await loadTokenizer(42);
// @ts-expect-error a GPUBuffer has no such method
buffer.notAMethod();
