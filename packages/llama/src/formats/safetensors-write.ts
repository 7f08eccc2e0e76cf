// Writing safetensors: the header planned once (names, dtypes, offsets; the reference writer's
// order on request), then the data, in memory or streamed by the Node writer. Browser-safe.

import { SafetensorsError } from '../errors.js';
import { describe, dtypeRank, elementCount, isNonNegativeInt, isSafetensorsDType, maxHeaderBytes, safetensorsDTypeSizes, type SafetensorsDType } from './safetensors-header.js';

/** Bytes of a tensor to write: any typed array or byte view, in the host's (little-endian) byte order. */
export type TensorData = ArrayBufferView;

/** One tensor to write. `data` may be a function, called only when the tensor's turn comes. */
export interface TensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: TensorData | (() => TensorData | Promise<TensorData>);
}

/**
 * Tensor order in the written file. `'given'` keeps the caller's order (e.g. layer by
 * layer, so a streaming load reads sequentially). `'reference'` sorts as the reference
 * implementation does: by dtype alignment, largest first, then by name, so every tensor
 * starts at an offset aligned to its element size.
 */
export type SafetensorsOrder = 'given' | 'reference';

/** Options of the safetensors writers. */
export interface SafetensorsWriteOptions {
  /** String map stored as the header's `__metadata__` (e.g. `{format: 'pt'}`). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Tensor order in the file; default `'given'`. */
  readonly order?: SafetensorsOrder;
}

/** A validated layout: the 8-byte length plus padded header, then each tensor's place. */
export interface SafetensorsPlan {
  /** The 8-byte length followed by the JSON header padded with spaces to a multiple of 8. */
  readonly header: Uint8Array;
  /** Tensors in file order, each with its data byte count. */
  readonly tensors: readonly { readonly tensor: TensorToWrite; readonly byteLength: number }[];
  /** Total file size in bytes. */
  readonly fileSize: number;
}

function compareCodePoints(a: string, b: string): number {
  // UTF-8 byte order equals code point order, which UTF-16 comparison breaks for astral characters.
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done === true) return y.done === true ? 0 : -1;
    if (y.done === true) return 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * Checks tensors and metadata and lays out a safetensors file: names unique and not
 * `__metadata__`, known dtypes, integer shapes, and (for data given up front) byte counts
 * matching the shape. `file` names the destination in error messages.
 */
export function planSafetensors(file: string, tensors: readonly TensorToWrite[], options: SafetensorsWriteOptions = {}): SafetensorsPlan {
  const seen = new Set<string>();
  const planned: { tensor: TensorToWrite; byteLength: number }[] = [];
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new SafetensorsError(file, t.name, 'this name is reserved for the header metadata; rename the tensor');
    if (seen.has(t.name)) throw new SafetensorsError(file, t.name, 'the name appears twice; tensor names must be unique');
    seen.add(t.name);
    if (!isSafetensorsDType(t.dtype)) {
      throw new SafetensorsError(file, t.name, `unknown dtype ${describe(t.dtype)}; expected one of ${Object.keys(safetensorsDTypeSizes).join(', ')}`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isNonNegativeInt)) {
      throw new SafetensorsError(file, t.name, `shape should be an array of non-negative integers, got ${describe(t.shape)}`);
    }
    const count = elementCount(t.shape);
    if (count === undefined) throw new SafetensorsError(file, t.name, `shape [${t.shape.join(', ')}] has more than 2^53 elements`);
    const byteLength = count * safetensorsDTypeSizes[t.dtype];
    if (typeof t.data !== 'function') checkDataLength(file, t, t.data, byteLength);
    planned.push({ tensor: t, byteLength });
  }
  if (options.order === 'reference') {
    planned.sort(
      (a, b) => dtypeRank.get(b.tensor.dtype)! - dtypeRank.get(a.tensor.dtype)! || compareCodePoints(a.tensor.name, b.tensor.name),
    );
  }
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(file, undefined, `metadata value "${k}" should be a string, got ${describe(v)}`);
      Object.defineProperty(meta, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
    header['__metadata__'] = meta;
  }
  let offset = 0;
  for (const { tensor, byteLength } of planned) {
    // defineProperty keeps a tensor called "__proto__" an ordinary key.
    Object.defineProperty(header, tensor.name, {
      value: { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + byteLength] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    offset += byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > maxHeaderBytes) throw new SafetensorsError(file, undefined, `the header would be ${padded} bytes, above the ${maxHeaderBytes}-byte limit; split the tensors over several shards`);
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { header: bytes, tensors: planned, fileSize: 8 + padded + offset };
}

function checkDataLength(file: string, t: TensorToWrite, data: TensorData, byteLength: number): void {
  if (!ArrayBuffer.isView(data)) {
    throw new SafetensorsError(file, t.name, `data should be a typed array or DataView, got ${describe(data)}`);
  }
  if (data.byteLength !== byteLength) {
    throw new SafetensorsError(
      file,
      t.name,
      `shape [${t.shape.join(', ')}] of ${t.dtype} needs ${byteLength} bytes, but the data has ${data.byteLength}`,
    );
  }
}

/** The bytes of a tensor's data, produced (if lazy) and checked against its shape. */
export async function tensorBytes(file: string, t: TensorToWrite, byteLength: number): Promise<Uint8Array> {
  const data = typeof t.data === 'function' ? await t.data() : t.data;
  checkDataLength(file, t, data, byteLength);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Serializes tensors to safetensors bytes in memory (small files, browser downloads).
 * Data must be given up front, not as functions. For large files use `writeSafetensors`.
 *
 * @example
 * const bytes = serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
 */
export function serializeSafetensors(tensors: readonly TensorToWrite[], options: SafetensorsWriteOptions = {}): Uint8Array<ArrayBuffer> {
  const file = 'serializeSafetensors';
  for (const t of tensors) {
    if (typeof t.data === 'function') {
      throw new SafetensorsError(file, t.name, 'data is a function; serializeSafetensors needs the bytes up front (use writeSafetensors to stream)');
    }
  }
  const plan = planSafetensors(file, tensors, options);
  const out = new Uint8Array(plan.fileSize);
  out.set(plan.header, 0);
  let offset = plan.header.byteLength;
  for (const { tensor } of plan.tensors) {
    const data = tensor.data as TensorData;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    offset += data.byteLength;
  }
  return out;
}
