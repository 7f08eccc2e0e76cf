// The safetensors header: the format's dtypes and their sizes, and the JSON header (tensor names,
// dtypes, shapes, data offsets) validated whole against the file's size before any data is read.

import { SafetensorsError } from '../errors.js';

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

/** Each dtype's place in that order. */
export const dtypeRank: ReadonlyMap<string, number> = new Map(
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

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A JSON value in a few words, for messages: its kind and the start of its text. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    let text: string;
    try {
      text = JSON.stringify(value);
    } catch {
      // Nested too deeply for JSON.stringify's stack (JSON.parse reads it), or holding what JSON cannot write.
      return `an array of ${value.length} items`;
    }
    return `array ${text.slice(0, 60)}`;
  }
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `string ${JSON.stringify(value.slice(0, 40))}`;
  return `${typeof value} ${String(value)}`;
}

/** A safe non-negative integer (a dimension, an offset). */
export function isNonNegativeInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** Product of a shape, or undefined when it exceeds 2^53. */
export function elementCount(shape: readonly number[]): number | undefined {
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

/** A validated header: tensors in file order and the metadata map. */
export interface ParsedHeader {
  metadata: Record<string, string>;
  /** Sorted by offset. */
  tensors: TensorInfo[];
}

/**
 * Validates a header as the reference implementation does: known dtypes, non-negative
 * integer shapes, byte counts matching shape x dtype size, and data offsets that tile
 * the data section exactly, with no overlap, no gap and nothing after the last tensor.
 */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): ParsedHeader {
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
        // defineProperty keeps a key called "__proto__" an ordinary key, where assignment would drop it.
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
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
