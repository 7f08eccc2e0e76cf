// Sizes on the device: bytes of a frozen projection in each format, the workspace a product with it
// allocates, row splits that keep a tensor under the binding limit, and bytes as text. The pieces
// the memory plan (memory.ts) and the model's loaders and layers share.

import type { QuantFormat } from '@huatuo/tensor';
import { MemoryError } from '../errors.js';
import type { LlamaConfig } from '../formats/config.js';
import type { LoraTargetModule } from '../lora/lora-config.js';

const MiB = 1024 * 1024;

/** Bytes as "123.4 MiB". */
export function formatBytes(bytes: number): string {
  return bytes >= 1024 * MiB ? `${(bytes / (1024 * MiB)).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`;
}

/** Row counts of parts of a [rows, rowBytes] matrix so that each part stays within `limit` bytes. */
export function splitRows(rows: number, rowBytes: number, limit: number): number[] {
  if (rowBytes > limit) {
    throw new MemoryError(`one row of ${rowBytes} bytes exceeds the binding limit of ${limit} bytes; no split along rows can fit it`);
  }
  const per = Math.max(1, Math.floor(limit / rowBytes));
  if (per >= rows) return [rows];
  // Equal parts (the last one shorter) keep the number of distinct kernel shapes small.
  const parts: number[] = [];
  for (let at = 0; at < rows; at += per) parts.push(Math.min(per, rows - at));
  return parts;
}

/**
 * Token rows per chunk of the MLP for N tokens: N when [N, I] fits `limit`, else the most rows
 * whose [rows, I] activation does (the decoder layer then runs its MLP chunk by chunk).
 */
export function mlpChunkRows(N: number, I: number, dtype: 'f32' | 'f16', limit: number): number {
  const rowBytes = I * (dtype === 'f16' ? 2 : 4);
  return N * rowBytes <= limit ? N : Math.max(1, Math.floor(limit / rowBytes));
}

/** Rows and weight bytes from which the v3 matmul (subgroup adapters) first copies a weight into panels. */
const PACK_MIN_ROWS = 64;
const PACK_MIN_BYTES = 8 << 20;

/**
 * Bytes a product of `rows` rows with a frozen [out, in] weight allocates beside its output: the v3
 * matmul copies a weight of 8 MiB or more into panels for 64 rows or more (adapters whose matmul is
 * another kernel copy nothing, so this is the most); an NF4 product expands the block absmaxes to
 * f32 (4 bytes per 64 weights; decoding's matrix-vector kernels decode them in place, so for decoding
 * this is the most); int8 needs nothing.
 */
export function productWorkspace(rows: number, out: number, inp: number, quantize: 'none' | QuantFormat, dtypeBytes: number): number {
  if (quantize === 'nf4') return Math.ceil((out * inp) / 64) * 4;
  if (quantize === 'int8') return 0;
  const bytes = out * inp * dtypeBytes;
  return rows >= PACK_MIN_ROWS && bytes >= PACK_MIN_BYTES ? bytes : 0;
}

/** Output and input sizes of a projection. */
export function projectionShape(config: LlamaConfig, target: LoraTargetModule): [number, number] {
  const C = config.hiddenSize;
  const qd = config.numAttentionHeads * config.headDim;
  const kvd = config.numKeyValueHeads * config.headDim;
  const I = config.intermediateSize;
  switch (target) {
    case 'q_proj':
      return [qd, C];
    case 'o_proj':
      return [C, qd];
    case 'k_proj':
    case 'v_proj':
      return [kvd, C];
    case 'gate_proj':
    case 'up_proj':
      return [I, C];
    case 'down_proj':
      return [C, I];
  }
}

/** Bytes of one frozen [rows, cols] projection as the device holds it (see QuantizedWeight). */
export function projectionBytes(rows: number, cols: number, quantize: 'none' | QuantFormat, dtypeBytes: number): number {
  const n = rows * cols;
  const words = (bytes: number) => Math.max(1, Math.ceil(bytes / 4)) * 4;
  switch (quantize) {
    case 'none':
      return n * dtypeBytes;
    case 'int8':
      return words(n) + rows * 4;
    case 'nf4': {
      const blocks = Math.ceil(n / 64);
      return words(Math.ceil(n / 2)) + words(blocks) + Math.ceil(blocks / 256) * 4 + 256 * 4;
    }
  }
}
