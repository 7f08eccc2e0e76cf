// The key/value cache of incremental decoding: per layer, preallocated [B, Hkv, maxLen, D]
// buffers that each step's new keys and values are written into (with RoPE on the keys in the same
// dispatch where the decoder can, see ropeCache); attention reads the filled prefix through a slice
// view. Beam search reorders its rows.

import { copyInto, expand, keep, ropeCache, slice, tidy, zeros, type FloatDType, type RopeFrequencies, type Tensor } from '@huatuo/tensor';
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
    /** Buffers of another cache to view ({@link firstRows}); by default new ones, zeroed. */
    views?: { keys: Tensor[]; values: Tensor[] },
  ) {
    this.keys = views?.keys ?? [];
    this.values = views?.values ?? [];
    if (views !== undefined) return;
    const shape = [batchSize, config.numKeyValueHeads, maxLength, config.headDim]; // [B, Hkv, maxLen, D]
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
   * The first `rows` rows of this cache: a cache over the same buffers, with a length of its own (the
   * prompt step of the distinct prompts of a batch, spread with {@link spreadRows}). Dispose it before
   * this cache is reordered or disposed.
   */
  firstRows(rows: number): KvCache {
    if (!Number.isInteger(rows) || rows < 1 || rows > this.batchSize) throw new ModelError(`KvCache.firstRows: expected 1 to ${this.batchSize} rows, got ${rows}`);
    const view = (t: Tensor) => keep(slice(t, 0, 0, rows));
    return new KvCache(this.config, rows, this.maxLength, this.dtype, { keys: this.keys.map(view), values: this.values.map(view) });
  }

  /**
   * Fills this empty cache from its own first rows, written over `length` positions (through
   * {@link firstRows}): row i becomes row `from[i]`, and the positions are filled. The first rows are
   * copied out first, so any row may be read from and written.
   */
  spreadRows(from: readonly number[], length: number): void {
    if (this.length !== 0 || from.length !== this.batchSize || from.some((r) => !Number.isInteger(r) || r < 0 || r >= this.batchSize)) {
      throw new ModelError(`KvCache.spreadRows: expected an empty cache and ${this.batchSize} row indices in [0, ${this.batchSize}), got [${from.join(', ')}]`);
    }
    if (!Number.isInteger(length) || length < 0 || length > this.maxLength) throw new ModelError(`KvCache.spreadRows: ${length} positions do not fit a cache of ${this.maxLength}`);
    const U = Math.max(...from) + 1;
    // Runs of rows [start, end) read from one row, leaving out the rows that keep their own.
    const runs: { start: number; end: number; row: number }[] = [];
    from.forEach((row, i) => {
      const last = runs.at(-1);
      if (row === i) return;
      if (last !== undefined && last.end === i && last.row === row) last.end = i + 1;
      else runs.push({ start: i, end: i + 1, row });
    });
    for (const t of [...this.keys, ...this.values]) {
      tidy(() => {
        const filled = slice(t, 2, 0, length); // [B, Hkv, length, D]
        // A copy of the first rows: a dispatch does not read and write one buffer.
        const first = zeros([U, ...filled.shape.slice(1)], { dtype: this.dtype });
        copyInto(first, slice(filled, 0, 0, U));
        for (const { start, end, row } of runs) copyInto(slice(filled, 0, start, end), expand(slice(first, 0, row, row + 1), [end - start, ...filled.shape.slice(1)]));
      });
    }
    this.length = length;
  }

  /** Frees the buffers. */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose('the KV cache was disposed');
  }
}
