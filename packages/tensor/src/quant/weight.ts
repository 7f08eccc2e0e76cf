// A frozen weight quantized on the device: the codes and scales of an int8 or NF4 weight as u32/f32
// tensors (counted by the buffer pool like any other), uploaded from the host format, and read back.
import { ShapeError } from '../errors.js';
import { tensor } from '../creation.js';
import { keep } from '../scope.js';
import type { Tensor } from '../tensor.js';
import { DYNAMIC_CODE, type HostQuantized, type QuantFormat } from './formats.js';

/**
 * Bytes as u32 words (byte order kept), zero-padded to a whole word: a view of the same memory when they are
 * whole aligned words already (the upload copies the bytes), else a copy.
 */
function words(bytes: Uint8Array | Int8Array): Uint32Array {
  if (bytes.length > 0 && bytes.length % 4 === 0 && bytes.byteOffset % 4 === 0) {
    return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  }
  const out = new Uint32Array(Math.max(1, Math.ceil(bytes.length / 4)));
  new Uint8Array(out.buffer).set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  return out;
}

/**
 * A quantized weight [rows, cols] (Hugging Face's [out, in]) on the device. int8: `codes` holds 4 codes per
 * word (byte j of word i is element 4i + j), `scales` the absmax of each row. NF4: `codes` holds bitsandbytes'
 * byte stream (8 codes per word), `absmaxCodes` one dynamic-map index per block of 64 (4 per word), `scales`
 * one f32 per 256 blocks, `dynamicMap` the 256-value map, `offset` the mean absmax.
 * Read by `quantizedMatmul`; never dequantized as a whole on the device.
 */
export class QuantizedWeight {
  private constructor(
    readonly format: QuantFormat,
    readonly rows: number,
    readonly cols: number,
    readonly codes: Tensor,
    readonly scales: Tensor,
    readonly absmaxCodes: Tensor | null,
    readonly dynamicMap: Tensor | null,
    readonly offset: number,
  ) {
    for (const t of [codes, scales, absmaxCodes, dynamicMap]) if (t !== null) keep(t);
  }

  /**
   * Uploads a host-quantized weight. Rows and columns must be multiples of 4 (every LLaMA projection's are),
   * so that the kernels read whole words and vec4s.
   */
  static upload(q: HostQuantized, name = 'weight'): QuantizedWeight {
    if (q.rows % 4 !== 0 || q.cols % 4 !== 0) {
      throw new ShapeError(`quantize: ${name} is [${q.rows}, ${q.cols}]; ${q.format} weights need rows and columns that are multiples of 4 (load it unquantized)`);
    }
    if (q.format === 'int8') {
      return new QuantizedWeight('int8', q.rows, q.cols, tensor(words(q.codes), undefined, { dtype: 'u32' }), tensor(q.absmax, undefined, { dtype: 'f32' }), null, null, 0);
    }
    return new QuantizedWeight(
      'nf4',
      q.rows,
      q.cols,
      tensor(words(q.packed), undefined, { dtype: 'u32' }),
      tensor(q.absmaxScales, undefined, { dtype: 'f32' }),
      tensor(words(q.absmaxCodes), undefined, { dtype: 'u32' }),
      tensor(DYNAMIC_CODE, undefined, { dtype: 'f32' }),
      q.absmaxOffset,
    );
  }

  /** Device bytes held (codes and scales). */
  get bytes(): number {
    return [this.codes, this.scales, this.absmaxCodes, this.dynamicMap].reduce((s, t) => s + (t === null ? 0 : t.size * 4), 0);
  }

  /** Reads the weight back into its host format (for merging or saving). */
  async download(): Promise<HostQuantized> {
    const codes = new Uint8Array((await this.codes.toArray()).buffer);
    const scales = Float32Array.from(await this.scales.toArray());
    const n = this.rows * this.cols;
    if (this.format === 'int8') {
      return { format: 'int8', rows: this.rows, cols: this.cols, codes: new Int8Array(codes.buffer, 0, n), absmax: scales };
    }
    const blocks = Math.ceil(n / 64);
    const absmaxCodes = new Uint8Array((await this.absmaxCodes!.toArray()).buffer).slice(0, blocks);
    return { format: 'nf4', rows: this.rows, cols: this.cols, packed: codes.slice(0, n / 2), absmaxCodes, absmaxScales: scales, absmaxOffset: this.offset };
  }

  /** Frees the device buffers. */
  dispose(): void {
    for (const t of [this.codes, this.scales, this.absmaxCodes, this.dynamicMap]) t?.dispose();
  }
}
