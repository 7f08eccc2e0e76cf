// The buffer pool's reuse policy on the real device: a released buffer serves a smaller request of up
// to half its size while small (batches of varying length), but a large one serves only requests within
// an eighth of its size (or 1 MiB), so a 7B weight or activation never sits in a buffer twice its size.
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
    const big = pool.acquire(64 * 1024);
    pool.release(big, noFlush);
    const created = pool.stats().buffersCreated;
    const small = pool.acquire(32 * 1024);
    assert.equal(small, big, 'the 64 KiB buffer serves a 32 KiB request');
    assert.equal(pool.stats().buffersCreated, created);
    assert.equal(pool.stats().bytesInUse, 64 * 1024, 'the peak counts the buffer handed out');
    pool.release(small, noFlush);
    pool.trim(noFlush);
  });

  it('hands a large released buffer only to requests within an eighth of its size', () => {
    const big = pool.acquire(32 * MiB);
    pool.release(big, noFlush);
    const half = pool.acquire(16 * MiB);
    assert.notEqual(half, big, 'a 32 MiB buffer does not serve a 16 MiB request');
    assert.equal(half.size, 16 * MiB);
    assert.equal(pool.stats().bytesInUse, 16 * MiB);
    const near = pool.acquire(29 * MiB);
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
});
