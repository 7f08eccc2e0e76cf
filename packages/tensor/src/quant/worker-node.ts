// A quantizing worker thread (pool-node.ts starts it): quantizes each weight it is sent with quantizeExact and
// sends the result's buffers back (transferred); an error goes back as its class name and message.
import { parentPort } from 'node:worker_threads';
import type { QuantFormat } from './formats.js';
import { quantizeExact, quantizedBuffers } from './pool.js';

/** One weight to quantize. */
interface Request {
  readonly data: Float32Array | Uint16Array;
  readonly rows: number;
  readonly cols: number;
  readonly format: QuantFormat;
}

const port = parentPort;
if (!port) throw new Error('internal: quant/worker-node runs as a worker thread of a quantize pool');
port.on('message', ({ data, rows, cols, format }: Request) => {
  try {
    const result = quantizeExact(data, rows, cols, format);
    port.postMessage({ result }, quantizedBuffers(result));
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    port.postMessage({ error: { name: e.name, message: e.message } });
  }
});
