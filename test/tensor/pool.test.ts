// The buffer pool's reuse policy on the real device: a released buffer serves a smaller request of up
// to half its size while small (batches of varying length), but a large one serves only requests within
// an eighth of its size (or 1 MiB), so a 7B weight or activation never sits in a buffer twice its size;
// and what the pool holds, in use and pooled, stays within the most ever in use plus minPooledBytes.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, getRuntime, maxReuseSize, sizeClass } from '@huatuo/tensor/internal';
import { gpu } from './helpers.js';

const MiB = 1 << 20;
const noFlush = () => {};

describe('BufferPool', () => {
  let pool: BufferPool;
  before(async () => {
    await gpu();
    pool = new BufferPool(getRuntime().device);
  });

  it('hands a small released buffer to a request of up to half its size', () => {
    const big = pool.acquire(64 * 1024, noFlush);
    pool.release(big, noFlush);
    const created = pool.stats().buffersCreated;
    const small = pool.acquire(32 * 1024, noFlush);
    assert.equal(small, big, 'the 64 KiB buffer serves a 32 KiB request');
    assert.equal(pool.stats().buffersCreated, created);
    assert.equal(pool.stats().bytesInUse, 64 * 1024, 'the peak counts the buffer handed out');
    pool.release(small, noFlush);
    pool.trim(noFlush);
  });

  it('hands a large released buffer only to requests within an eighth of its size', () => {
    const big = pool.acquire(32 * MiB, noFlush);
    pool.release(big, noFlush);
    const half = pool.acquire(16 * MiB, noFlush);
    assert.notEqual(half, big, 'a 32 MiB buffer does not serve a 16 MiB request');
    assert.equal(half.size, 16 * MiB);
    assert.equal(pool.stats().bytesInUse, 16 * MiB);
    const near = pool.acquire(29 * MiB, noFlush);
    assert.equal(near, big, 'a 32 MiB buffer serves a 29 MiB request (within an eighth)');
    for (const b of [half, near]) pool.release(b, noFlush);
    pool.trim(noFlush);
    assert.equal(pool.stats().bytesPooled, 0);
  });

  it('allows twice the size class up to 1 MiB, then 1 MiB more up to 8 MiB, then an eighth more', () => {
    assert.equal(maxReuseSize(sizeClass(1000)), 2 * 1024);
    assert.equal(maxReuseSize(MiB), 2 * MiB);
    assert.equal(maxReuseSize(4 * MiB), 5 * MiB);
    assert.equal(maxReuseSize(8 * MiB), 9 * MiB);
    assert.equal(maxReuseSize(64 * MiB), 72 * MiB);
  });

  it('destroys pooled buffers before a new one would take what it holds over the peak in use', () => {
    const tight = new BufferPool(getRuntime().device, 0);
    let flushes = 0;
    const big = tight.acquire(32 * MiB, noFlush);
    tight.release(big, noFlush);
    const half = tight.acquire(16 * MiB, () => flushes++);
    assert.equal(flushes, 1, 'pending commands are submitted before a pooled buffer is destroyed');
    assert.equal(tight.stats().bytesPooled, 0, 'the 32 MiB pooled buffer is destroyed: 48 MiB would exceed the 32 MiB peak');
    assert.equal(tight.stats().bytesAllocated, 16 * MiB);
    tight.release(half, noFlush);
    tight.trim(noFlush);
  });

  it('holds at most the peak in use plus minPooledBytes over any sequence of requests', () => {
    const slack = 4 * MiB;
    const bounded = new BufferPool(getRuntime().device, slack);
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const held: GPUBuffer[] = [];
    let peakInUse = 0;
    for (let i = 0; i < 300; i++) {
      if (held.length > 0 && (held.length > 6 || random() < 0.45)) bounded.release(held.splice(Math.floor(random() * held.length), 1)[0]!, noFlush);
      else held.push(bounded.acquire(Math.floor(random() * 6 * MiB) + 1024, noFlush));
      const s = bounded.stats();
      peakInUse = Math.max(peakInUse, s.bytesInUse);
      assert.ok(s.bytesAllocated <= peakInUse + slack, `step ${i}: holds ${s.bytesAllocated} B, peak in use ${peakInUse} B + ${slack} B`);
      assert.ok(s.peakAllocatedBytes >= s.bytesAllocated);
    }
    assert.ok(bounded.stats().buffersCreated < 300, 'released buffers are reused');
    for (const b of held) bounded.release(b, noFlush);
    bounded.trim(noFlush);
  });
});
