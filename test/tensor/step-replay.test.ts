// Recorded steps (recordStep): a replay computes what running the step computes, with new host and GPU
// inputs and at other key counts where the ops declare the words that move; a recording whose step moves
// an undeclared word does not match the step after it; one that reads a released buffer, that writes
// host data that is not an input or reads back is not replayed; the buffers it holds go back to the pool.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { add, attention, initWebGPU, keep, mul, randn, recordStep, runtimeStats, slice, sum, tensor, tidy, toArray, type MarkInput, type Tensor } from '@huatuo/tensor';

const f32 = (xs: number[]) => new Float32Array(xs);

describe('recorded steps', () => {
  before(async () => {
    await initWebGPU();
  });

  it('replays with new host and GPU inputs what running the step computes, and frees its buffers once disposed', async () => {
    const w = keep(tensor(f32([1, 2, 3, 4]), [4]));
    const inUse = runtimeStats().buffersInUse;
    const step = (input: MarkInput, x: Tensor, host: Float32Array) => tidy(() => mul(add(input('x', x), input('h', tensor(host, [4]))), w));
    const x0 = tensor(f32([1, 1, 1, 1]), [4]);
    const { result, recording } = recordStep(1, (input) => step(input, x0, f32([0, 1, 2, 3])));
    assert.equal(recording.refused, null);
    assert.deepEqual([...((await toArray(result)) as Float32Array)], [1, 4, 9, 16]);
    const x1 = tensor(f32([5, 6, 7, 8]), [4]);
    const inputs = { x: x1, h: f32([1, 1, 1, 1]) };
    assert.ok(recording.covers(1, inputs));
    const again = recording.replay(1, inputs);
    assert.deepEqual([...((await toArray(again)) as Float32Array)], [6, 14, 24, 36]);
    // Host data beyond the buffer it was recorded into is not covered.
    assert.ok(!recording.covers(1, { x: x1, h: new Float32Array(1024) }));
    for (const t of [result, again, x0, x1]) t.dispose();
    recording.dispose();
    assert.equal(runtimeStats().buffersInUse, inUse);
    w.dispose();
  });

  it('is invalid once a buffer it reads and did not create is released', () => {
    const w = keep(tensor(f32([1, 2, 3, 4]), [4]));
    const { result, recording } = recordStep(1, () => mul(w, w));
    assert.ok(recording.covers(1, {}));
    w.dispose();
    assert.ok(!recording.covers(1, {}));
    result.dispose();
    recording.dispose();
  });

  it('refuses a step that uploads host data that is not an input, or reads back', async () => {
    const w = keep(tensor(f32([1, 2, 3, 4]), [4]));
    const a = recordStep(1, () => tidy(() => add(w, tensor(f32([1, 1, 1, 1]), [4]))));
    assert.match(a.recording.refused ?? '', /host data that is not an input/);
    assert.ok(!a.recording.covers(1, {}));
    let read: Promise<unknown> | null = null;
    const b = recordStep(1, () => {
      const y = mul(w, w);
      read = toArray(y);
      return add(y, w);
    });
    await read;
    assert.match(b.recording.refused ?? '', /reads back/);
    for (const r of [a, b]) {
      r.result.dispose();
      r.recording.dispose();
    }
    w.dispose();
  });

  it('matches the step recorded at more keys when every word that moves is declared (decode attention, its splits too), not otherwise (a sum over a growing slice)', () => {
    // Decode attention over a cache of 64 keys, 20, 21 then 33 of them filled: S and kv_offset move,
    // and at 33 keys the splits (three of 16 keys instead of two) and the partial kernel's workgroups.
    const k = keep(randn([1, 2, 64, 8], { seed: 1 }));
    const v = keep(randn([1, 2, 64, 8], { seed: 2 }));
    const q = keep(randn([1, 2, 1, 8], { seed: 3 }));
    const attend = (S: number) => recordStep(S, () => attention(q, slice(k, 2, 0, S), slice(v, 2, 0, S)));
    const [a20, a21] = [attend(20), attend(21)];
    assert.ok(a20.recording.covers(21, {}));
    assert.ok(a20.recording.matches(a21.recording));
    const a33 = attend(33);
    assert.ok(a20.recording.matches(a33.recording));
    // A sum over the first S keys: its size moves and no op declares it.
    const summed = (S: number) => recordStep(S, () => sum(slice(k, 2, 0, S)));
    const [s20, s21] = [summed(20), summed(21)];
    assert.ok(!s20.recording.matches(s21.recording));
    for (const r of [a20, a21, a33, s20, s21]) {
      r.result.dispose();
      r.recording.dispose();
    }
    for (const t of [k, v, q]) t.dispose();
  });
});
