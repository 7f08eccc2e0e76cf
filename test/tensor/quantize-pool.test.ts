// openQuantizePool: worker threads give the bytes quantizeHostF16 and quantizeHost give on the calling thread,
// take whole input buffers (copying views), send a worker's error back as the calling thread would throw it,
// keep working after one, and stop every thread on close().
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ShapeError,
  ValueError,
  defaultQuantizeThreads,
  f32ToF16Bits,
  maxDefaultQuantizeThreads,
  openQuantizePool,
  quantizeHost,
  quantizeHostF16,
  type HostQuantized,
  type QuantFormat,
} from '@huatuo/tensor';
import { seededValues } from './helpers.js';

/** Worker threads alive in this process (each holds one MessagePort handle). */
const liveWorkers = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;

function assertSameBytes(got: HostQuantized, want: HostQuantized, what: string): void {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), what);
  for (const [key, field] of Object.entries(want)) {
    const mine = (got as unknown as Record<string, unknown>)[key];
    if (ArrayBuffer.isView(field)) assert.deepEqual(mine, field, `${what}: ${key}`);
    else assert.ok(Object.is(mine, field), `${what}: ${key} is ${String(mine)}, the calling thread gives ${String(field)}`);
  }
}

// Shapes whose NF4 blocks straddle rows, a ragged last block, and more than 256 blocks (two absmax scales).
const shapes: [number, number][] = [[172, 64], [64, 172], [33, 7], [300, 64]];

test('a pool of 3 threads gives the calling thread bytes, in order, for F16 bits and f32 values', async () => {
  const before = liveWorkers();
  const pool = openQuantizePool(3);
  try {
    assert.equal(pool.threads, 3);
    for (const format of ['nf4', 'int8'] as QuantFormat[]) {
      const inputs = shapes.flatMap(([rows, cols], i) => {
        const values = seededValues(rows * cols, 11 + i, 0.05);
        return [{ rows, cols, data: f32ToF16Bits(values) as Float32Array | Uint16Array }, { rows, cols, data: values as Float32Array | Uint16Array }];
      });
      const wants = inputs.map(({ rows, cols, data }) => (data instanceof Uint16Array ? quantizeHostF16(data, rows, cols, format) : quantizeHost(data, rows, cols, format)));
      const jobs = inputs.map(({ rows, cols, data }) => pool.quantize(data, rows, cols, format));
      const all = Promise.all(jobs);
      all.catch(() => undefined);
      assert.ok(liveWorkers() >= before + 3, `3 workers run (${liveWorkers() - before} found)`);
      const gots = await all;
      assert.ok(inputs.every(({ data }) => data.length === 0), 'each input buffer is transferred, not copied');
      gots.forEach((got, i) => assertSameBytes(got, wants[i]!, `${format} ${inputs[i]!.rows}x${inputs[i]!.cols} #${i}`));
    }
  } finally {
    await pool.close();
  }
  assert.equal(liveWorkers(), before, 'close() stops every worker');
});

test('a view into a larger buffer is copied to the worker, and the buffer is left whole', async () => {
  const pool = openQuantizePool(2);
  try {
    const whole = f32ToF16Bits(seededValues(3 * 64 * 64, 5, 0.1));
    const view = whole.subarray(64 * 64, 2 * 64 * 64);
    const want = quantizeHostF16(view, 64, 64, 'nf4');
    assertSameBytes(await pool.quantize(view, 64, 64, 'nf4'), want, 'the view');
    assert.equal(whole.length, 3 * 64 * 64);
    assert.equal(view.length, 64 * 64);
  } finally {
    await pool.close();
  }
});

test("an error in a worker rejects that weight with the calling thread's error, and the pool keeps working", async () => {
  const short = f32ToF16Bits(seededValues(100, 3));
  const mainThread = openQuantizePool(1);
  const want = await mainThread.quantize(short.slice(), 16, 8, 'nf4').then(() => undefined, (e: unknown) => e);
  await mainThread.close();
  assert.ok(want instanceof ShapeError, 'the calling thread refuses 100 values as [16, 8]');
  const pool = openQuantizePool(2);
  try {
    await assert.rejects(pool.quantize(short.slice(), 16, 8, 'nf4'), (e: unknown) => {
      assert.ok(e instanceof ShapeError, `a ShapeError, got ${String(e)}`);
      assert.equal(e.message, want.message);
      return true;
    });
    const ok = f32ToF16Bits(seededValues(128, 4));
    assertSameBytes(await pool.quantize(ok.slice(), 16, 8, 'int8'), quantizeHostF16(ok, 16, 8, 'int8'), 'the next weight');
  } finally {
    await pool.close();
  }
});

test('close() rejects the weights still queued, stops the workers and refuses new weights', async () => {
  const before = liveWorkers();
  const pool = openQuantizePool(2);
  const jobs = Array.from({ length: 6 }, (_, i) => pool.quantize(f32ToF16Bits(seededValues(256 * 256, i)), 256, 256, 'nf4'));
  const settled = Promise.allSettled(jobs);
  await pool.close();
  assert.equal(liveWorkers(), before, 'no worker is left running');
  const results = await settled;
  assert.ok(results.some((r) => r.status === 'rejected'), 'weights not yet quantized are rejected');
  for (const r of results) if (r.status === 'rejected') assert.match(String(r.reason), /closed before this weight was quantized/);
  await assert.rejects(pool.quantize(new Uint16Array(64), 1, 64, 'nf4'), /closed/);
});

test('thread counts: a whole number of at least 1; the default leaves a core to the calling thread', () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => openQuantizePool(bad), ValueError, `threads ${bad}`);
  const threads = defaultQuantizeThreads();
  assert.ok(threads >= 1 && threads <= maxDefaultQuantizeThreads, `default ${threads}`);
});
