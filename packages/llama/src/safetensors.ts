// Safetensors: an 8-byte little-endian header length N, N bytes of JSON header, then raw
// little-endian tensor data. The reader validates the whole header up front, then reads
// one tensor at a time from its offsets; the in-memory writer shares the header planner.
// Browser-safe: no Node built-ins.

import {
  bf16ToF16,
  bf16ToF32,
  f16ToF32,
  f32ToF16,
  hostIsLittleEndian,
} from './dtype-convert.js';
import { SafetensorsError } from './errors.js';
import { nonFiniteProblem } from './finite-check.js';
import type { ByteSource } from './source.js';

/** Element types of the safetensors format. */
export type SafetensorsDType =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'F8_E8M0'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'C64'
  | 'F64'
  | 'I64'
  | 'U64';

/**
 * Bytes per element of each dtype, listed in the reference implementation's order of
 * increasing alignment (the order its writer sorts by).
 */
export const safetensorsDTypeSizes: Readonly<Record<SafetensorsDType, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  C64: 8,
  F64: 8,
  I64: 8,
  U64: 8,
});

const dtypeRank: ReadonlyMap<string, number> = new Map(
  Object.keys(safetensorsDTypeSizes).map((d, i) => [d, i]),
);

/** True when `d` names a dtype this reader knows. */
export function isSafetensorsDType(d: unknown): d is SafetensorsDType {
  return typeof d === 'string' && dtypeRank.has(d);
}

/** Largest header accepted, as in the reference implementation (100 MB). */
export const maxHeaderBytes = 100_000_000;

/** Where one tensor lives in a safetensors file. */
export interface TensorInfo {
  /** Tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Bytes of data: product of the shape times the dtype's size. */
  readonly byteLength: number;
  /** Absolute offset of the first data byte in the file. */
  readonly offset: number;
}

/** Host dtypes that F32, F16 and BF16 tensors can be converted to: f32 values or f16 bit patterns. */
export type HostFloatDType = 'f32' | 'f16';

/** The typed array `readAs` returns for each host dtype (f16 as raw bit patterns). */
export type HostFloatArray<T extends HostFloatDType> = T extends 'f32' ? Float32Array : Uint16Array;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array ${JSON.stringify(value).slice(0, 60)}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `string ${JSON.stringify(value.slice(0, 40))}`;
  return `${typeof value} ${String(value)}`;
}

function isNonNegativeInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** Product of a shape, or undefined when it exceeds 2^53. */
function elementCount(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
}

/** Deepest nesting a header can have: the object of tensors, each an object holding arrays of integers. */
const maxHeaderDepth = 3;

/**
 * The deepest nesting of objects and arrays in JSON text (brackets inside strings skipped),
 * found before parsing so that a header of millions of nested arrays is refused by name
 * rather than exhausting the stack.
 */
function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

interface ParsedHeader {
  metadata: Record<string, string>;
  /** Sorted by offset. */
  tensors: TensorInfo[];
}

/**
 * Validates a header as the reference implementation does: known dtypes, non-negative
 * integer shapes, byte counts matching shape x dtype size, and data offsets that tile
 * the data section exactly, with no overlap, no gap and nothing after the last tensor.
 */
function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): ParsedHeader {
  const n = headerBytes.byteLength;
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, undefined, 'the header is not valid UTF-8; the file is corrupt or not a safetensors file');
  }
  if (!text.startsWith('{')) {
    throw new SafetensorsError(
      file,
      undefined,
      `the header should start with "{", got ${JSON.stringify(text.slice(0, 16))}; the file is corrupt or not a safetensors file`,
    );
  }
  const depth = jsonDepth(text);
  if (depth > maxHeaderDepth) {
    throw new SafetensorsError(
      file,
      undefined,
      `the ${n}-byte header nests objects and arrays ${depth} levels deep, but a safetensors header has at most ${maxHeaderDepth} (tensors, each with arrays of integers); the file is corrupt or not a safetensors file`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new SafetensorsError(file, undefined, `the ${n}-byte header is not valid JSON (${why}); the file is corrupt`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, undefined, `the header should be a JSON object, got ${describe(json)}`);
  }
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  const entries = Object.entries(json as Record<string, unknown>);
  for (const [name, entry] of entries) {
    if (name === '__metadata__') {
      if (entry === null) continue;
      if (typeof entry !== 'object' || Array.isArray(entry)) {
        throw new SafetensorsError(file, undefined, `"__metadata__" should be an object of strings, got ${describe(entry)}`);
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') {
          throw new SafetensorsError(file, undefined, `"__metadata__" value "${k}" should be a string, got ${describe(v)}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new SafetensorsError(file, name, `the header entry should be an object {dtype, shape, data_offsets}, got ${describe(entry)}`);
    }
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isSafetensorsDType(dtype)) {
      throw new SafetensorsError(
        file,
        name,
        `unknown dtype ${describe(dtype)}; expected one of ${Object.keys(safetensorsDTypeSizes).join(', ')}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      throw new SafetensorsError(file, name, `shape should be an array of non-negative integers, got ${describe(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
      throw new SafetensorsError(file, name, `data_offsets should be [begin, end] non-negative integers, got ${describe(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) {
      throw new SafetensorsError(file, name, `data_offsets [${begin}, ${end}] end before they begin`);
    }
    if (end > dataSize) {
      throw new SafetensorsError(
        file,
        name,
        `data_offsets [${begin}, ${end}] run past the data section, which holds ${Math.max(0, dataSize)} bytes; the file is truncated or its header is wrong`,
      );
    }
    const count = elementCount(shape as number[]);
    const size = safetensorsDTypeSizes[dtype];
    if (count === undefined || count * size !== end - begin) {
      throw new SafetensorsError(
        file,
        name,
        `shape [${shape.join(', ')}] of ${dtype} needs ${count === undefined ? 'more than 2^53' : count * size} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    tensors.push({ name, dtype, shape: Object.freeze([...(shape as number[])]), byteLength: end - begin, offset: dataStart + begin });
  }
  tensors.sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let cursor = dataStart;
  let previous: TensorInfo | undefined;
  for (const t of tensors) {
    if (t.offset < cursor) {
      throw new SafetensorsError(
        file,
        t.name,
        `data_offsets [${t.offset - dataStart}, ${t.offset - dataStart + t.byteLength}] overlap tensor "${previous?.name ?? ''}"; tensors must not share bytes`,
      );
    }
    if (t.offset > cursor) {
      throw new SafetensorsError(
        file,
        t.name,
        `data_offsets begin at ${t.offset - dataStart} but the previous tensor ends at ${cursor - dataStart}; gaps between tensors are rejected, as by the reference implementation`,
      );
    }
    cursor = t.offset + t.byteLength;
    previous = t;
  }
  if (cursor !== fileSize) {
    throw new SafetensorsError(
      file,
      undefined,
      `the tensors end at byte ${cursor} but the file has ${fileSize} bytes; trailing bytes are rejected, as by the reference implementation`,
    );
  }
  return { metadata, tensors };
}

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

// ---------------------------------------------------------------------------
// Writing

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
      meta[k] = v;
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
