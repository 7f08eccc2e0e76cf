// Safetensors: an 8-byte little-endian header length N, N bytes of JSON header (safetensors-header.ts),
// then raw little-endian tensor data, read one tensor at a time from its offsets. Browser-safe.

import { bf16ToF16, bf16ToF32, f16ToF32, f32ToF16, hostIsLittleEndian } from './dtype-convert.js';
import { SafetensorsError } from '../errors.js';
import { nonFiniteProblem } from './finite-check.js';
import { maxHeaderBytes, parseHeader, type ParsedHeader, type SafetensorsDType, type TensorInfo } from './safetensors-header.js';
import type { ByteSource } from './source.js';

/** Host dtypes that F32, F16 and BF16 tensors can be converted to: f32 values or f16 bit patterns. */
export type HostFloatDType = 'f32' | 'f16';

/** The typed array `readAs` returns for each host dtype (f16 as raw bit patterns). */
export type HostFloatArray<T extends HostFloatDType> = T extends 'f32' ? Float32Array : Uint16Array;

/**
 * Typed view over bytes read from a file, copying only when the data is misaligned
 * or the host is big-endian.
 */
function viewAs16(bytes: Uint8Array): Uint16Array {
  const n = bytes.byteLength >>> 1;
  if (hostIsLittleEndian && bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Uint16Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}

function viewAs32f(bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength >>> 2;
  if (hostIsLittleEndian && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

/**
 * Converts the raw bytes of an F32, F16 or BF16 tensor to host floats: `'f32'` gives a
 * Float32Array, `'f16'` gives f16 bit patterns in a Uint16Array (rounded to nearest even).
 */
export function convertFloatBytes<T extends HostFloatDType>(
  bytes: Uint8Array,
  dtype: SafetensorsDType,
  target: T,
): HostFloatArray<T> | undefined {
  let out: Float32Array | Uint16Array;
  if (target === 'f32') {
    if (dtype === 'F32') out = viewAs32f(bytes);
    else if (dtype === 'F16') out = f16ToF32(viewAs16(bytes));
    else if (dtype === 'BF16') out = bf16ToF32(viewAs16(bytes));
    else return undefined;
  } else {
    if (dtype === 'F32') out = f32ToF16(viewAs32f(bytes));
    else if (dtype === 'F16') out = viewAs16(bytes);
    else if (dtype === 'BF16') out = bf16ToF16(viewAs16(bytes));
    else return undefined;
  }
  return out as HostFloatArray<T>;
}

/**
 * A safetensors file opened for streaming: the header is read and validated on `open`,
 * tensor data is read only when asked for, one tensor at a time.
 *
 * @example
 * const st = await SafetensorsFile.open(await openFileSource('model.safetensors'));
 * for (const t of st.tensors) console.log(t.name, t.dtype, t.shape);
 * const wq = await st.readAs('model.layers.0.self_attn.q_proj.weight', 'f32');
 */
export class SafetensorsFile {
  /** The byte source the file is read from. */
  readonly source: ByteSource;
  /** The file's path or name, as used in error messages. */
  readonly name: string;
  /** The header's `__metadata__` string map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every tensor, in file order. */
  readonly tensors: readonly TensorInfo[];
  /** Bytes before the data section: 8 + header length. */
  readonly headerByteLength: number;
  private readonly byName: ReadonlyMap<string, TensorInfo>;

  private constructor(source: ByteSource, header: ParsedHeader, headerByteLength: number) {
    this.source = source;
    this.name = source.name;
    this.metadata = Object.freeze(header.metadata);
    this.tensors = Object.freeze(header.tensors.map((t) => Object.freeze(t)));
    this.headerByteLength = headerByteLength;
    this.byName = new Map(this.tensors.map((t) => [t.name, t]));
  }

  /**
   * Reads and validates the header of `source` (two small reads: 8 bytes, then the header).
   * Throws SafetensorsError naming the file, and the tensor where there is one, when the
   * header is malformed or does not match the file's size.
   */
  static async open(source: ByteSource): Promise<SafetensorsFile> {
    const file = source.name;
    if (source.size < 8) {
      throw new SafetensorsError(file, undefined, `the file has ${source.size} bytes, fewer than the 8-byte header length; it is truncated or not a safetensors file`);
    }
    const prefix = await readExactly(source, 0, 8, undefined);
    const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    if (n64 > BigInt(maxHeaderBytes)) {
      throw new SafetensorsError(file, undefined, `the header length is ${n64} bytes, above the ${maxHeaderBytes}-byte limit; the file is corrupt or not a safetensors file`);
    }
    const n = Number(n64);
    if (8 + n > source.size) {
      throw new SafetensorsError(file, undefined, `the header length is ${n} bytes but only ${source.size - 8} bytes follow it; the file is truncated or corrupt`);
    }
    const headerBytes = await readExactly(source, 8, n, undefined);
    return new SafetensorsFile(source, parseHeader(file, headerBytes, source.size), 8 + n);
  }

  /** True when the file holds a tensor called `name`. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The tensor called `name`; throws SafetensorsError listing a few names when absent. */
  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (t === undefined) {
      const some = this.tensors.slice(0, 5).map((x) => x.name).join(', ');
      throw new SafetensorsError(this.name, name, `no such tensor; the file holds ${this.tensors.length} tensors${some ? ` (${some}${this.tensors.length > 5 ? ', ...' : ''})` : ''}`);
    }
    return t;
  }

  /** Reads only this tensor's bytes from the source. */
  async read(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return readExactly(this.source, t.offset, t.byteLength, name);
  }

  /**
   * Reads an F32, F16 or BF16 tensor as host floats: `'f32'` gives a Float32Array,
   * `'f16'` the f16 bit patterns in a Uint16Array (rounded to nearest, ties to even). A tensor
   * holding NaN or infinity (or, read as f16, values beyond f16's range) is refused with a
   * SafetensorsError naming it, unless `options.allowNonFinite`.
   */
  async readAs<T extends HostFloatDType>(name: string, target: T, options: { allowNonFinite?: boolean } = {}): Promise<HostFloatArray<T>> {
    const t = this.info(name);
    const bytes = await this.read(name);
    const out = convertFloatBytes(bytes, t.dtype, target);
    if (out === undefined) {
      throw new SafetensorsError(this.name, name, `dtype ${t.dtype} cannot be read as ${target}; only F32, F16 and BF16 convert; use read() for the raw bytes`);
    }
    if (!options.allowNonFinite) {
      const inFile = target === 'f16' && t.dtype !== 'F16' ? () => convertFloatBytes(bytes, t.dtype, 'f32')! : undefined;
      const problem = nonFiniteProblem(out, inFile);
      if (problem !== undefined) throw new SafetensorsError(this.name, name, problem);
    }
    return out;
  }

  /** Closes the underlying source when it has a handle. */
  async close(): Promise<void> {
    await this.source.close?.();
  }
}

/** Reads exactly `length` bytes or throws SafetensorsError (the file shrank or the source is short). */
async function readExactly(source: ByteSource, offset: number, length: number, tensor: string | undefined): Promise<Uint8Array> {
  const bytes = await source.read(offset, length);
  if (bytes.byteLength !== length) {
    throw new SafetensorsError(source.name, tensor, `expected ${length} bytes at offset ${offset}, got ${bytes.byteLength}; the file was truncated after it was opened`);
  }
  return bytes;
}
