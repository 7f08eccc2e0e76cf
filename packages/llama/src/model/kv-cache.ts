// The key/value cache of incremental decoding: per layer, preallocated [B, Hkv, maxLen, D]
// buffers that each step's new keys and values are written into (with RoPE on the keys in the same
// dispatch where the decoder can, see ropeCache); attention reads the filled prefix through a slice
// view. Beam search reorders its rows.

import { copyInto, keep, ropeCache, slice, tidy, zeros, type FloatDType, type RopeFrequencies, type Tensor } from '@huatuo/tensor';
import type { LlamaConfig } from '../formats/config.js';
import { ModelError } from '../errors.js';

/** Cached keys and values of every layer for a batch of sequences. */
export class KvCache {
  private keys: Tensor[];
  private values: Tensor[];
  /** Positions filled so far (the same for every row; padding is masked, not skipped). */
  length = 0;

  constructor(
    readonly config: LlamaConfig,
    /** Rows (sequences). */
    readonly batchSize: number,
    /** Longest total length (prompt plus new tokens) the cache holds. */
    readonly maxLength: number,
    readonly dtype: FloatDType,
  ) {
    const shape = [batchSize, config.numKeyValueHeads, maxLength, config.headDim]; // [B, Hkv, maxLen, D]
    this.keys = [];
    this.values = [];
    for (let l = 0; l < config.numHiddenLayers; l++) {
      this.keys.push(keep(zeros(shape, { dtype })));
      this.values.push(keep(zeros(shape, { dtype })));
    }
  }

  /**
   * Writes a layer's new keys and values (k, v [B, Hkv, T, D]) at positions [length, length + T)
   * and returns views of all filled positions, [B, Hkv, length + T, D]. Call `advance(T)` once
   * every layer has appended.
   */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const T = k.shape[2]!;
    const end = this.length + T;
    if (end > this.maxLength) {
      throw new ModelError(`KvCache: ${end} positions do not fit a cache of ${this.maxLength}; create the cache with a larger maxLength`);
    }
    const K = this.keys[layer]!;
    const V = this.values[layer]!;
    copyInto(slice(K, 2, this.length, end), k);
    copyInto(slice(V, 2, this.length, end), v);
    return { k: slice(K, 2, 0, end), v: slice(V, 2, 0, end) };
  }

  /**
   * Rotates the new queries and keys (RoPE) and writes the keys and values of a layer in one
   * dispatch (see ropeCache): q [B, T, H D], k, v [B, T, Hkv D] as the projections return them.
   * Returns the rotated queries [B, H, T, D] and views of all filled keys and values,
   * [B, Hkv, length + T, D], as rope and {@link append} would. `freq`: theta or a RopeSpec (scaled RoPE).
   * Call `advance(T)` once every layer has appended.
   */
  appendRoped(layer: number, q: Tensor, k: Tensor, v: Tensor, positions: Tensor, freq: RopeFrequencies): { q: Tensor; k: Tensor; v: Tensor } {
    const end = this.length + q.shape[1]!;
    if (end > this.maxLength) {
      throw new ModelError(`KvCache: ${end} positions do not fit a cache of ${this.maxLength}; create the cache with a larger maxLength`);
    }
    const K = this.keys[layer]!;
    const V = this.values[layer]!;
    const qh = ropeCache(q, k, v, positions, freq, K, V, this.length);
    return { q: qh, k: slice(K, 2, 0, end), v: slice(V, 2, 0, end) };
  }

  /** Marks `T` more positions as filled. */
  advance(T: number): void {
    this.length += T;
  }

  /** Row i of the cache becomes old row `rows[i]` (beam search keeps the chosen beams' histories). */
  reorder(rows: readonly number[]): void {
    if (rows.length !== this.batchSize || rows.some((r) => !Number.isInteger(r) || r < 0 || r >= this.batchSize)) {
      throw new ModelError(`KvCache.reorder: expected ${this.batchSize} row indices in [0, ${this.batchSize}), got [${rows.join(', ')}]`);
    }
    if (rows.every((r, i) => r === i) || this.length === 0) return;
    const reorder = (old: Tensor): Tensor => {
      const next = keep(zeros(old.shape, { dtype: this.dtype }));
      tidy(() => {
        const filled = slice(old, 2, 0, this.length);
        const target = slice(next, 2, 0, this.length);
        rows.forEach((src, dst) => copyInto(slice(target, 0, dst, dst + 1), slice(filled, 0, src, src + 1)));
      });
      old.dispose('replaced by a reordered cache');
      return next;
    };
    this.keys = this.keys.map(reorder);
    this.values = this.values.map(reorder);
  }

  /**
   * Fills this empty cache from `source`: row i becomes source's row `rows[i]`, over the positions source
   * holds (a prompt computed once for the rows that repeat it). Call inside tidy.
   */
  fillFrom(source: KvCache, rows: readonly number[]): void {
    if (this.length !== 0 || rows.length !== this.batchSize || rows.some((r) => !Number.isInteger(r) || r < 0 || r >= source.batchSize)) {
      throw new ModelError(`KvCache.fillFrom: expected an empty cache and ${this.batchSize} row indices in [0, ${source.batchSize}), got [${rows.join(', ')}]`);
    }
    if (source.length > this.maxLength) throw new ModelError(`KvCache.fillFrom: ${source.length} positions do not fit a cache of ${this.maxLength}`);
    const fill = (dst: Tensor, src: Tensor) => {
      const [target, filled] = [slice(dst, 2, 0, source.length), slice(src, 2, 0, source.length)];
      rows.forEach((from, to) => copyInto(slice(target, 0, to, to + 1), slice(filled, 0, from, from + 1)));
    };
    this.keys.forEach((k, l) => fill(k, source.keys[l]!));
    this.values.forEach((v, l) => fill(v, source.values[l]!));
    this.length = source.length;
  }

  /** Frees the buffers. */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose('the KV cache was disposed');
  }
}
