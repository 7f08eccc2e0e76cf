import { strict as assert } from 'node:assert';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import safetensorsNpm from 'safetensors';
import {
  Checkpoint,
  SafetensorsError,
  bytesSource,
  openCheckpoint,
  openCheckpointFromFiles,
  serializeSafetensors,
  writeShardedCheckpoint,
  type LoadProgress,
  type TensorToWrite,
} from '@huatuo/llama';

const { SafeTensor } = safetensorsNpm as unknown as {
  SafeTensor: new (bytes: Uint8Array) => { metadata: Map<string, unknown>; getTensor(name: string): Uint8Array };
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Five 100-byte F32 tensors (25 floats each), values identifying tensor and index. */
const fiveTensors: TensorToWrite[] = Array.from({ length: 5 }, (_, i) => ({
  name: `model.layers.${i}.mlp.up_proj.weight`,
  dtype: 'F32',
  shape: [5, 5],
  data: new Float32Array(25).map((_, j) => i * 100 + j),
}));

test('a sharded checkpoint round-trips: HF shard names, an index with total_size and sorted weight_map, every tensor readable', async () => {
  await withDir(async (dir) => {
    // 100-byte tensors under a 250-byte limit fill shards 2, 2 and 1.
    const result = await writeShardedCheckpoint(dir, fiveTensors, { maxShardBytes: 250 });
    const shards = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    assert.deepEqual(result.shards, shards);
    assert.equal(result.totalSize, 500);
    assert.deepEqual((await readdir(dir)).sort(), [...shards, 'model.safetensors.index.json'].sort());
    const indexText = await readFile(join(dir, 'model.safetensors.index.json'), 'utf8');
    const index = JSON.parse(indexText);
    assert.deepEqual(index.metadata, { total_size: 500 });
    const keys = Object.keys(index.weight_map);
    assert.deepEqual(keys, [...keys].sort());
    assert.deepEqual(
      fiveTensors.map((t) => index.weight_map[t.name]),
      [shards[0], shards[0], shards[1], shards[1], shards[2]],
    );
    // Each shard is a standalone safetensors file the npm reader can read.
    for (const t of fiveTensors) {
      const shard = new Uint8Array(await readFile(join(dir, index.weight_map[t.name])));
      // Shards carry __metadata__ {format: 'pt'}, which that reader would take for a tensor, so drop it.
      const theirs = new SafeTensor(stripMetadata(shard));
      assert.deepEqual(new Uint8Array(theirs.getTensor(t.name)), new Uint8Array((t.data as Float32Array).buffer));
    }
    const ckpt = await openCheckpoint(dir);
    try {
      assert.deepEqual(ckpt.tensors.map((t) => t.name), fiveTensors.map((t) => t.name));
      const progress: LoadProgress[] = [];
      const seen: string[] = [];
      for await (const { info, data } of ckpt.iterateAs('f32', { onProgress: (p) => progress.push(p) })) {
        seen.push(info.name);
        assert.deepEqual(data, fiveTensors.find((t) => t.name === info.name)!.data);
      }
      assert.deepEqual(seen, fiveTensors.map((t) => t.name));
      assert.deepEqual(
        progress.map((p) => [p.bytesRead, p.tensorsRead, p.name]),
        fiveTensors.map((t, i) => [100 * (i + 1), i + 1, t.name]),
      );
      assert.ok(progress.every((p) => p.totalBytes === 500 && p.totalTensors === 5));
      assert.deepEqual(await ckpt.readAs(fiveTensors[3]!.name, 'f16'), new Uint16Array(25).fill(0).map((_, j) => f16Of(300 + j)));
    } finally {
      await ckpt.close();
    }
  });
});

/** f16 bits of an integer in [256, 2048): exponent from its power of two, mantissa exact. */
function f16Of(n: number): number {
  const e = Math.floor(Math.log2(n));
  return ((e + 15) << 10) | ((n / 2 ** e - 1) * 1024);
}

function stripMetadata(bytes: Uint8Array): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  delete header.__metadata__;
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + n), 8 + json.length);
  return out;
}

test('any tensor list survives writeShardedCheckpoint and openCheckpoint, with no shard over the limit unless it holds one tensor', async () => {
  const tensorsArb = fc
    .uniqueArray(fc.stringMatching(/^[a-z][a-z0-9._]{0,8}$/), { minLength: 1, maxLength: 8 })
    .chain((names) =>
      fc.tuple(
        ...names.map((name) =>
          fc.integer({ min: 0, max: 40 }).map((n): TensorToWrite => ({ name, dtype: 'U8', shape: [n], data: new Uint8Array(n).fill(n) })),
        ),
      ),
    );
  await fc.assert(
    fc.asyncProperty(tensorsArb, fc.integer({ min: 1, max: 100 }), async (tensors, maxShardBytes) => {
      await withDir(async (dir) => {
        const result = await writeShardedCheckpoint(dir, tensors, { maxShardBytes });
        const ckpt = await openCheckpoint(dir);
        try {
          assert.deepEqual(ckpt.tensors.map((t) => t.name), tensors.map((t) => t.name));
          for (const t of tensors) assert.deepEqual(await ckpt.read(t.name), t.data);
          for (const shard of result.shards) {
            const inShard = ckpt.tensors.filter((t) => t.shard === shard);
            assert.ok(inShard.length > 0);
            const bytes = inShard.reduce((s, t) => s + t.byteLength, 0);
            assert.ok(bytes <= maxShardBytes || inShard.length === 1, `${shard}: ${bytes} > ${maxShardBytes}`);
          }
          assert.equal(result.index === undefined, result.shards.length === 1);
        } finally {
          await ckpt.close();
        }
      });
    }),
    { numRuns: 40 },
  );
});

test('rewriting a checkpoint replaces it whole: stale shards and a stale index are removed', async () => {
  await withDir(async (dir) => {
    await writeShardedCheckpoint(dir, fiveTensors, { maxShardBytes: 250 });
    const result = await writeShardedCheckpoint(dir, fiveTensors.slice(0, 2));
    assert.deepEqual(result, { shards: ['model.safetensors'], index: undefined, totalSize: 200 });
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
    const ckpt = await openCheckpoint(dir);
    assert.deepEqual(ckpt.tensors.map((t) => t.name), fiveTensors.slice(0, 2).map((t) => t.name));
    await ckpt.close();
    await writeShardedCheckpoint(dir, fiveTensors, { maxShardBytes: 400 });
    assert.deepEqual((await readdir(dir)).sort(), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
  });
});

test('an index that disagrees with its shards raises SafetensorsError naming the index and the tensor', async () => {
  await withDir(async (dir) => {
    await writeShardedCheckpoint(dir, fiveTensors, { maxShardBytes: 250 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8'));
    const name0 = fiveTensors[0]!.name;
    const check = (tensor: string | undefined, ...fragments: string[]) => (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, String(err));
      assert.equal(err.file, indexPath);
      assert.equal(err.tensor, tensor);
      for (const f of fragments) assert.ok(err.message.includes(f), err.message);
      return true;
    };

    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, 'extra.weight': 'model-00001-of-00003.safetensors' } }));
    await assert.rejects(openCheckpoint(dir), check('extra.weight', 'model-00001-of-00003.safetensors', 'does not hold it'));

    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [name0]: 'model-00002-of-00003.safetensors' } }));
    await assert.rejects(openCheckpoint(dir), check(name0, 'places it in model-00002-of-00003.safetensors', 'stale'));

    const withoutFirst = Object.fromEntries(Object.entries(index.weight_map).filter(([k]) => k !== name0));
    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: withoutFirst }));
    await assert.rejects(openCheckpoint(dir), check(name0, 'does not list it'));

    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [name0]: 'model-00009-of-00009.safetensors' } }));
    await assert.rejects(openCheckpoint(dir), check(undefined, 'model-00009-of-00009.safetensors', 'missing'));

    await writeFile(indexPath, JSON.stringify({ weight_map: { [name0]: '../outside.safetensors' } }));
    await assert.rejects(openCheckpoint(dir), check(name0, 'same folder'));

    await writeFile(indexPath, '{"weight_map": ');
    await assert.rejects(openCheckpoint(dir), check(undefined, 'not valid JSON'));

    // Values JSON.parse reads but JSON.stringify's stack cannot write back: they ended in a bare RangeError.
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    await writeFile(indexPath, `{"weight_map": {${JSON.stringify(name0)}: ${deep}}}`);
    await assert.rejects(openCheckpoint(dir), check(name0, 'same folder', 'an array of 1 items'));
    await writeFile(indexPath, `{"metadata": {"total_size": ${deep}}, "weight_map": ${JSON.stringify(index.weight_map)}}`);
    await assert.rejects(openCheckpoint(dir), check(undefined, '"metadata.total_size" should be a non-negative integer', 'an array of 1 items'));
  });
});

test('a corrupt shard raises SafetensorsError naming the shard file', async () => {
  await withDir(async (dir) => {
    await writeShardedCheckpoint(dir, fiveTensors, { maxShardBytes: 250 });
    const shard = join(dir, 'model-00002-of-00003.safetensors');
    const bytes = await readFile(shard);
    await writeFile(shard, bytes.subarray(0, bytes.length - 1));
    await assert.rejects(openCheckpoint(dir), (err: unknown) => err instanceof SafetensorsError && err.file === shard);
  });
});

test('a folder without a checkpoint raises SafetensorsError saying what was expected', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 'other.safetensors'), serializeSafetensors([]));
    await assert.rejects(openCheckpoint(dir), /none of model\.safetensors\.index\.json, model\.safetensors, pytorch_model\.bin\.index\.json or pytorch_model\.bin is here.*found other\.safetensors/);
    await assert.rejects(openCheckpoint(join(dir, 'nope')), /does not exist/);
  });
});

test('browser Files open the same sharded checkpoint, and a lone .safetensors File opens alone', async () => {
  await withDir(async (dir) => {
    await writeShardedCheckpoint(dir, fiveTensors, { maxShardBytes: 250 });
    const files = await Promise.all((await readdir(dir)).map(async (f) => new File([await readFile(join(dir, f))], f)));
    files.push(new File(['{}'], 'config.json'));
    const ckpt = await openCheckpointFromFiles(files);
    const got: string[] = [];
    for await (const { info, data } of ckpt.iterate({ names: [fiveTensors[4]!.name, fiveTensors[1]!.name] })) {
      got.push(info.name);
      assert.deepEqual(data, new Uint8Array((fiveTensors.find((t) => t.name === info.name)!.data as Float32Array).buffer));
    }
    assert.deepEqual(got, [fiveTensors[1]!.name, fiveTensors[4]!.name]);
    await assert.rejects(
      openCheckpointFromFiles(files.filter((f) => f.name !== 'model-00003-of-00003.safetensors')),
      /model-00003-of-00003\.safetensors is listed/,
    );
    const single = await openCheckpointFromFiles([new File([serializeSafetensors(fiveTensors.slice(0, 1))], 'adapter_model.safetensors')]);
    assert.deepEqual(single.tensors.map((t) => [t.name, t.shard]), [[fiveTensors[0]!.name, 'adapter_model.safetensors']]);
  });
});

test('iterateExact reads F16 tensors as their bit patterns and F32 and BF16 as f32 values, and refuses a non-finite one by name', async () => {
  await withDir(async (dir) => {
    const f16 = Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x8000, 0x7bff, 0x3555]);
    const f32 = Float32Array.from([1.5, -2.25, 3e-39, 0, 1e30, -7]);
    const bf16 = Uint16Array.from([0x3f80, 0xc040, 0x0001, 0x8000, 0x7f7f, 0x4049]);
    const tensors: TensorToWrite[] = [
      { name: 'a', dtype: 'F16', shape: [2, 3], data: f16 },
      { name: 'b', dtype: 'F32', shape: [2, 3], data: f32 },
      { name: 'c', dtype: 'BF16', shape: [2, 3], data: bf16 },
    ];
    await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
    const ckpt = await openCheckpoint(dir);
    try {
      const got = new Map<string, Float32Array | Uint16Array>();
      for await (const { info, data } of ckpt.iterateExact()) got.set(info.name, data);
      assert.ok(got.get('a') instanceof Uint16Array);
      assert.deepEqual([...got.get('a')!], [...f16]);
      assert.ok(got.get('b') instanceof Float32Array);
      assert.deepEqual([...got.get('b')!], [...f32]);
      assert.ok(got.get('c') instanceof Float32Array);
      assert.deepEqual([...got.get('c')!], [...new Float32Array(new Uint32Array(Array.from(bf16, (b) => b << 16)).buffer)]);
    } finally {
      await ckpt.close();
    }
    await writeFile(join(dir, 'model.safetensors'), serializeSafetensors([{ name: 'bad', dtype: 'F16', shape: [2], data: Uint16Array.from([0x3c00, 0x7c00]) }]));
    const bad = await openCheckpoint(dir);
    try {
      await assert.rejects(async () => {
        for await (const _ of bad.iterateExact()) void _;
      }, (err: unknown) => err instanceof SafetensorsError && /bad/.test(err.message) && /Infinity/.test(err.message));
    } finally {
      await bad.close();
    }
  });
});

test('prefetch starts reading the next tensor before yielding this one, with the same tensors and progress, and a caller that stops early sees no stray failure', async () => {
  const file = serializeSafetensors(fiveTensors);
  const reads: number[] = [];
  let failFrom = Infinity;
  const open = () =>
    Checkpoint.open('five', undefined, async () => {
      const inner = bytesSource('model.safetensors', file);
      return {
        name: inner.name,
        size: inner.size,
        async read(offset: number, length: number) {
          reads.push(offset);
          if (offset >= failFrom) throw new Error('read failed');
          return inner.read(offset, length);
        },
      };
    });
  const plain = await open();
  const want: [string, Float32Array][] = [];
  const wantProgress: LoadProgress[] = [];
  for await (const { info, data } of plain.iterateAs('f32', { onProgress: (p) => wantProgress.push(p) })) want.push([info.name, data]);
  const ckpt = await open();
  const got: [string, Float32Array][] = [];
  const progress: LoadProgress[] = [];
  reads.length = 0;
  for await (const { info, data } of ckpt.iterateAs('f32', { prefetch: true, onProgress: (p) => progress.push(p) })) {
    got.push([info.name, data]);
    assert.equal(reads.length, Math.min(got.length + 1, fiveTensors.length), `at tensor ${got.length}, the next read has started`);
  }
  assert.deepEqual(got, want);
  assert.deepEqual(progress, wantProgress);
  // The second tensor's read fails after the caller has stopped at the first: nothing is left unhandled.
  failFrom = ckpt.info(fiveTensors[1]!.name).offset;
  for await (const _ of ckpt.iterateAs('f32', { prefetch: true })) break;
  await new Promise((r) => setTimeout(r, 20));
});
