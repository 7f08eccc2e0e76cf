// Bandwidth rows of the remaining training kernels against their minimal traffic: rope, embedding
// (forward, and the backward by host-grouped ids and by a scan of device ids), dropout, clipGradNorm
// and GradScaler's unscale. Rope and dropout backwards run their forward kernel again, so no rows.
import {
  backward,
  cast,
  clipGradNorm,
  deviceInfo,
  dropout,
  embedding,
  randn,
  rope,
  tensor,
  transpose,
  unscaleGradients,
  type Tensor,
} from '@huatuo/tensor';
import { bandwidthRow, freeGrads } from './bandwidth.js';
import type { BenchContext } from './kernels.bench.js';
import { readFew } from './matmul.bench.js';

const MiB = 1 << 20;

/** rope, embedding, dropout, clipGradNorm and GradScaler unscale rows (f32). */
export async function benchLayers(ctx: BenchContext): Promise<void> {
  // rope on q [B, H, T, D] = [1, 32, 256, 128] (the cos/sin tables, 64 KiB each, are left out).
  {
    const [H, T, D] = [32, 256, 128];
    const n = H * T * D * 4;
    const q = randn([1, H, T, D], { seed: 21 });
    const positions = tensor(Int32Array.from({ length: T }, (_, i) => i), [T], { dtype: 'i32' });
    await bandwidthRow(ctx, 'rope fwd', 'huatuo', `1x${H}x${T}x${D}`, 2 * n, 'traffic: read x, write y', async () => {
      const y = rope(q, positions);
      await readFew(y);
      y.dispose();
    });
    // As a decoder layer calls it: the heads of the projection's output [1, T, H D], a transposed view read in place.
    const projected = randn([1, T, H, D], { seed: 24 });
    const heads = transpose(projected, 1, 2); // [1, H, T, D]
    await bandwidthRow(ctx, 'rope fwd, heads view', 'huatuo', `1x${H}x${T}x${D}`, 2 * n, 'traffic: read x, write y', async () => {
      const y = rope(heads, positions);
      await readFew(y);
      y.dispose();
    });
    heads.dispose();
    projected.dispose();
    q.dispose();
    positions.dispose();
  }
  // embedding: 256 ids into a [32000, C] table, C = 4096 or the widest power of two under the binding limit.
  {
    const [N, V] = [256, 32000];
    let C = 4096;
    while (V * C * 4 > deviceInfo()!.maxStorageBufferBindingSize) C /= 2;
    const ids = tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [N], { dtype: 'i32' });
    // A copy made on the GPU has no host values, so its backward scans the N ids once per table row.
    const deviceIds = cast(ids, 'i32');
    const cases = [
      { bench: 'embedding fwd+bwd', ids, C, ctx },
      { bench: 'embedding fwd+bwd scan', ids: deviceIds, C, ctx },
    ];
    for (const [k, c] of cases.entries()) {
      const row = c.C * 4;
      const shape = `${N} ids, ${V}x${c.C}`;
      const table = randn([V, c.C], { seed: 22 }).requireGrad();
      const dy = randn([N, c.C], { seed: 23 });
      if (k === 0) {
        await bandwidthRow(ctx, 'embedding fwd', 'huatuo', shape, 2 * N * row, 'traffic: read N rows, write N rows (ids are N i32)', async () => {
          const y = embedding(ids, table);
          await readFew(y);
          y.dispose();
        });
      }
      const note = `traffic: fwd read, write N rows; bwd read dy, write the dense ${((V * row) / MiB).toFixed(0)} MiB dtable once`;
      await bandwidthRow(c.ctx, c.bench, 'huatuo', shape, (3 * N + V) * row, note, async () => {
        const y = embedding(c.ids, table);
        backward(y, dy);
        await readFew(table.grad!);
        y.dispose();
        freeGrads(table);
      });
      table.dispose();
      dy.dispose();
    }
    ids.dispose();
    deviceIds.dispose();
  }
  // dropout p = 0.1 on [256, 4096].
  {
    const [R, C] = [256, 4096];
    const x = randn([R, C], { seed: 24 });
    await bandwidthRow(ctx, 'dropout fwd', 'huatuo', `${R}x${C}`, 2 * R * C * 4, 'traffic: read x, write y (the mask is hashed, not stored)', async () => {
      const y = dropout(x, 0.1, 1234);
      await readFew(y);
      y.dispose();
    });
    x.dispose();
  }
  // clipGradNorm and GradScaler unscale over 16M parameters in four [1024, 4096] gradients.
  {
    const params = Array.from({ length: 4 }, (_, i) => {
      const p = randn([1024, 4096], { seed: 30 + i }).requireGrad();
      p.grad = randn([1024, 4096], { seed: 40 + i });
      return p;
    });
    const P = 4 * 1024 * 4096;
    await bandwidthRow(ctx, 'clipGradNorm', 'huatuo', '16M params in 4', 12 * P, 'traffic: read g for the norm, read and write g to scale (12 B/param)', async () => {
      const norm = clipGradNorm(params, 1.0);
      await readFew(norm);
      norm.dispose();
    });
    // Alternating 1/1024 and 1024 keeps the gradients' magnitude (no subnormals).
    let k = 0;
    const grads = params.map((p) => p.grad!) as Tensor[];
    await bandwidthRow(ctx, 'GradScaler unscale', 'huatuo', '16M params in 4', 8 * P, 'traffic: read and write g (8 B/param; the inf/NaN flag is one u32)', async () => {
      const found = unscaleGradients(grads, k++ % 2 === 0 ? 1 / 1024 : 1024);
      await readFew(found);
      found.dispose();
    });
    freeGrads(...params);
    for (const p of params) p.dispose();
  }
}
