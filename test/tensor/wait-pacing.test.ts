// The readback pacer keys each wait by its own work: a ticket taken when a read submits covers what was
// submitted since the previous ticket, so two reads in flight (decoding one step ahead) do not mix.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WaitPacer } from '@huatuo/tensor/internal';

/** Queues and submits `n` dispatches of kernel `label` on a [x, 1, 1] grid. */
function work(p: WaitPacer, label: string, n: number, x: number): void {
  for (let i = 0; i < n; i++) p.queued(label, x, 1, 1);
  p.submitted(n);
}

describe('WaitPacer', () => {
  it('gives a read its own work while an earlier read is still in flight, and records each under its key', () => {
    const alone = new WaitPacer();
    work(alone, 'step', 3, 8);
    const a = alone.ticket();
    work(alone, 'argmax', 1, 2);
    const b = alone.ticket();

    const p = new WaitPacer();
    work(p, 'step', 3, 8);
    const first = p.ticket();
    work(p, 'argmax', 1, 2);
    const second = p.ticket();
    assert.equal(first.key, a.key);
    assert.equal(second.key, b.key);
    assert.notEqual(first.key, second.key);
    assert.equal(second.dispatches, 1);
    assert.ok(second.since >= first.since);
    p.recordWait(first);
    p.recordWait(second);
    assert.equal(p.recorded(first.key)?.seen, 1);
    assert.equal(p.recorded(second.key)?.seen, 1);
  });

  it('with one read at a time keys each wait by the work since the last, as the same step repeats', () => {
    const p = new WaitPacer();
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      work(p, 'step', 5, 16);
      const t = p.ticket();
      keys.push(t.key);
      p.recordWait(t);
    }
    assert.equal(new Set(keys).size, 1);
    assert.equal(p.recorded(keys[0]!)?.seen, 3);
  });

  it('lets a wait with no work of its own sleep on the read still in flight, as waiting polls away the cores of a software adapter', () => {
    const p = new WaitPacer();
    work(p, 'step', 2, 4);
    const read = p.ticket();
    const sync = p.ticket();
    assert.equal(sync.key, read.key);
    assert.equal(sync.since, read.since);
    assert.equal(sync.dispatches, 0);
    p.recordWait(read);
    p.recordWait(sync);
    assert.equal(p.recorded(read.key)?.seen, 1, 'the sync records nothing of its own');
    // Once the read's wait ended there is nothing in flight to sleep on.
    assert.equal(p.ticket().dispatches, 0);
    assert.notEqual(p.ticket().key, read.key);
  });

  it('records nothing for a wait with no work of its own (a sync right after a read)', () => {
    const p = new WaitPacer();
    work(p, 'step', 2, 4);
    p.recordWait(p.ticket());
    const empty = p.ticket();
    assert.equal(empty.dispatches, 0);
    p.recordWait(empty);
    assert.equal(p.recorded(empty.key), undefined);
  });
});
