// Quantizing many weights: the QuantizePool interface, the main-thread pool (browsers, and Node with one
// thread), and the one function every pool runs on a weight, on the main thread or in a worker.
import { ShapeError, TensorError, ValueError } from '../errors.js';
import { quantizeHost, quantizeHostF16, type HostQuantized, type QuantFormat } from './formats.js';

/**
 * Quantizes row-major weights, possibly on other threads: `quantize` resolves to the bytes quantizeHost
 * (f32 values) or quantizeHostF16 (f16 bit patterns) gives on the calling thread.
 */
export interface QuantizePool {
  /** Threads quantizing at once: 1 when the pool runs on the calling thread. */
  readonly threads: number;
  /**
   * Quantizes a [rows, cols] weight. A worker pool takes `data`'s buffer when the array is all of it
   * (transferred, not copied: the array is left empty); other arrays are copied.
   */
  quantize(data: Float32Array | Uint16Array, rows: number, cols: number, format: QuantFormat): Promise<HostQuantized>;
  /** Stops the pool's threads; quantizations not yet done reject. */
  close(): Promise<void>;
}

/** The quantization every pool runs: checked, then quantizeHostF16 or quantizeHost. */
export function quantizeExact(data: Float32Array | Uint16Array, rows: number, cols: number, format: QuantFormat): HostQuantized {
  if (format !== 'int8' && format !== 'nf4') throw new ValueError(`quantize: format is ${String(format)}; use 'int8' or 'nf4'`);
  if (data.length !== rows * cols) {
    throw new ShapeError(`quantize: the weight holds ${data.length} values, but [${rows}, ${cols}] needs ${rows * cols}; pass the weight's own shape`);
  }
  return data instanceof Uint16Array ? quantizeHostF16(data, rows, cols, format) : quantizeHost(data, rows, cols, format);
}

/** Checks a thread count: a whole number of at least 1. */
export function checkThreads(threads: number, what: string): void {
  if (!Number.isInteger(threads) || threads < 1) throw new ValueError(`${what}: threads is ${threads}; give a whole number of at least 1 (1 quantizes on the calling thread)`);
}

/** The buffers of a quantized weight's arrays, to transfer them between threads. */
export function quantizedBuffers(q: HostQuantized): ArrayBuffer[] {
  const arrays = q.format === 'int8' ? [q.codes, q.absmax] : [q.packed, q.absmaxCodes, q.absmaxScales];
  return arrays.filter(ownsBuffer).map((a) => a.buffer as ArrayBuffer);
}

/** Whether a typed array spans all of a (non-shared) ArrayBuffer, so that transferring it moves nothing else. */
export function ownsBuffer(a: ArrayBufferView): boolean {
  return a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
}

const errorClasses: Record<string, new (message: string) => TensorError> = { ShapeError, ValueError };

/** An error thrown on another thread, as the calling thread would have thrown it (its class and message). */
export function rebuildError(name: string, message: string): Error {
  const Class = errorClasses[name];
  return Class ? new Class(message) : Object.assign(new Error(message), { name });
}

/** A pool running each quantization on the calling thread when it is asked for. */
export function mainThreadPool(): QuantizePool {
  let closed = false;
  return {
    threads: 1,
    async quantize(data, rows, cols, format) {
      if (closed) throw new ValueError('QuantizePool: quantize after close(); open another pool');
      return quantizeExact(data, rows, cols, format);
    },
    async close() {
      closed = true;
    },
  };
}
