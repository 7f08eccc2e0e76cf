import { strict as assert } from 'node:assert';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import safetensorsNpm from 'safetensors';
import {
  SafetensorsError,
  SafetensorsFile,
  blobSource,
  bytesSource,
  openSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type ByteSource,
  type TensorToWrite,
} from '@huatuo/llama';

const { SafeTensor } = safetensorsNpm as unknown as {
  SafeTensor: new (bytes: Uint8Array) => {
    metadata: Map<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    getTensor(name: string): Uint8Array;
  };
};

/** The npm reader ignores a view's byteOffset, so give it bytes that start their buffer. */
function npmRead(bytes: Uint8Array) {
  return new SafeTensor(new Uint8Array(bytes));
}

function asBytes(data: TensorToWrite['data']): Uint8Array {
  const v = data as ArrayBufferView;
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const le64 = (n: number) => [n, 0, 0, 0, 0, 0, 0, 0];

test('serialized files match the bytes the reference implementation produces', () => {
  // Expected bytes as asserted by the Rust safetensors crate's serialization tests.
  const f32 = new Float32Array([0, 1, 2, 3, 4, 5]);
  const data = [...new Uint8Array(f32.buffer)];
  const h1 = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.deepEqual([...serializeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: f32 }])], [...le64(64), ...ascii(h1), ...data]);
  const h2 = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
  assert.deepEqual(
    [...serializeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: f32 }])],
    [...le64(72), ...ascii(h2), ...ascii(' '.repeat(7)), ...data],
  );
  assert.deepEqual([...serializeSafetensors([])], [...le64(8), ...ascii('{}      ')]);
  assert.deepEqual(
    [...serializeSafetensors([], { metadata: { framework: 'pt' } })],
    [...le64(40), ...ascii('{"__metadata__":{"framework":"pt"}}     ')],
  );
});

test('reference order sorts by dtype alignment, largest first, then by name', async () => {
  const tensors: TensorToWrite[] = [
    { name: 'b', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
    { name: 'z', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
    { name: 'a', dtype: 'F64', shape: [1], data: new Float64Array([1]) },
    { name: 'y', dtype: 'F32', shape: [1], data: new Float32Array([1]) },
    { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array([2]) },
  ];
  const st = await SafetensorsFile.open(bytesSource('o.safetensors', serializeSafetensors(tensors, { order: 'reference' })));
  assert.deepEqual(st.tensors.map((t) => t.name), ['a', 'x', 'y', 'z', 'b']);
  for (const t of st.tensors) assert.equal(t.offset % (t.dtype === 'U8' ? 1 : t.byteLength), 0, t.name);
  const given = await SafetensorsFile.open(bytesSource('g.safetensors', serializeSafetensors(tensors)));
  assert.deepEqual(given.tensors.map((t) => t.name), ['b', 'z', 'a', 'y', 'x']);
  const a = await given.read('a'); // F64 at a misaligned offset still reads
  assert.equal(new DataView(a.buffer, a.byteOffset, 8).getFloat64(0, true), 1);
  assert.deepEqual([...(await given.readAs('y', 'f32'))], [1]);
});

test('files we write read back identically through our reader and the npm safetensors reader', async () => {
  const tensors: TensorToWrite[] = [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [4, 3], data: new Float32Array(12).map((_, i) => i * 0.5 - 2) },
    { name: 'model.norm.weight', dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0x4000, 0xbc00]) },
    { name: 'lm_head.weight', dtype: 'BF16', shape: [2, 3], data: new Uint16Array([0x3f80, 0, 0x4000, 0xc040, 1, 0x7f80]) },
    { name: 'ids', dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -1n]) },
    { name: 'mask', dtype: 'BOOL', shape: [5], data: new Uint8Array([1, 0, 1, 1, 0]) },
    { name: 'empty', dtype: 'F32', shape: [0, 7], data: new Float32Array(0) },
    { name: 'scalar', dtype: 'I32', shape: [], data: new Int32Array([42]) },
  ];
  const dir = await mkdtemp(join(tmpdir(), 'st-'));
  try {
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, tensors);
    const onDisk = await readFile(path);
    assert.deepEqual(new Uint8Array(onDisk), serializeSafetensors(tensors), 'streamed and in-memory writers agree');
    const theirs = npmRead(onDisk);
    const ours = await openSafetensors(path);
    try {
      assert.deepEqual(ours.tensors.map((t) => t.name), tensors.map((t) => t.name));
      for (const t of tensors) {
        const want = asBytes(t.data);
        assert.deepEqual(await ours.read(t.name), want, t.name);
        assert.deepEqual(new Uint8Array(theirs.getTensor(t.name)), want, `npm reader: ${t.name}`);
        const meta = theirs.metadata.get(t.name)!;
        assert.equal(meta.dtype, t.dtype);
        assert.deepEqual(meta.shape, t.shape);
        assert.deepEqual(ours.info(t.name).shape, t.shape);
        assert.equal(ours.info(t.name).dtype, t.dtype);
      }
    } finally {
      await ours.close();
    }
    assert.deepEqual(await readdir(dir), ['model.safetensors'], 'no temp file is left behind');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('header metadata round-trips as a string map', async () => {
  const bytes = serializeSafetensors([{ name: 'w', dtype: 'U8', shape: [1], data: new Uint8Array([9]) }], { metadata: { format: 'pt', note: 'ü' } });
  const st = await SafetensorsFile.open(bytesSource('m.safetensors', bytes));
  assert.deepEqual(st.metadata, { format: 'pt', note: 'ü' });
});

test('metadata keys named "__proto__" or "constructor" are kept as ordinary keys when read and written, as the reference keeps any string', async () => {
  const header = '{"__metadata__":{"__proto__":"x","constructor":"y","format":"pt"},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
  const st = await SafetensorsFile.open(bytesSource('m.safetensors', craft(header, 1)));
  const expected = [['__proto__', 'x'], ['constructor', 'y'], ['format', 'pt']];
  assert.deepEqual(Object.entries(st.metadata), expected);
  assert.equal(Object.getPrototypeOf(st.metadata), Object.prototype);
  const written = serializeSafetensors([{ name: 'w', dtype: 'U8', shape: [1], data: new Uint8Array([9]) }], { metadata: st.metadata });
  assert.deepEqual(Object.entries((await SafetensorsFile.open(bytesSource('m2.safetensors', written))).metadata), expected);
});

test('reading one tensor requests only the header and that tensor, never the whole file', async () => {
  const tensors: TensorToWrite[] = Array.from({ length: 16 }, (_, i) => ({
    name: `layers.${i}.weight`,
    dtype: 'F32' as const,
    shape: [32, 32],
    data: new Float32Array(1024).fill(i),
  }));
  const bytes = serializeSafetensors(tensors);
  const inner = bytesSource('big.safetensors', bytes);
  const requests: [number, number][] = [];
  const counting: ByteSource = {
    name: inner.name,
    size: inner.size,
    read(offset, length) {
      requests.push([offset, length]);
      return inner.read(offset, length);
    },
  };
  const st = await SafetensorsFile.open(counting);
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.deepEqual(requests, [[0, 8], [8, headerLength]]);
  const w = await st.readAs('layers.7.weight', 'f32');
  assert.ok(w.every((v) => v === 7));
  const requested = requests.reduce((s, [, n]) => s + n, 0);
  assert.equal(requested, 8 + headerLength + 32 * 32 * 4);
  assert.ok(requested < bytes.byteLength / 4, `${requested} of ${bytes.byteLength} bytes requested`);
});

test('the same reader works on a browser File/Blob, slicing only what it reads', async () => {
  const data = new Float32Array([1.5, -2.25, 3]);
  const bytes = serializeSafetensors([
    { name: 'a', dtype: 'F32', shape: [3], data },
    { name: 'b', dtype: 'U8', shape: [2], data: new Uint8Array([7, 8]) },
  ]);
  const file = new File([bytes], 'weights.safetensors');
  const st = await SafetensorsFile.open(blobSource(file));
  assert.equal(st.name, 'weights.safetensors');
  assert.deepEqual([...(await st.readAs('a', 'f32'))], [...data]);
  assert.deepEqual([...(await st.read('b'))], [7, 8]);
  const fromBlob = await SafetensorsFile.open(blobSource(new Blob([bytes]), 'blob.safetensors'));
  assert.deepEqual([...(await fromBlob.read('b'))], [7, 8]);
});

function expectSafetensorsError(file: string, tensor: string | undefined, ...fragments: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
    assert.equal(err.file, file);
    assert.equal(err.tensor, tensor);
    assert.ok(err.message.startsWith(file), err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  };
}

/** A file with the given header JSON text (padded to 8) and `dataBytes` zero bytes of data. */
function craft(header: string, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.fill(0x20, 8, 8 + n);
  out.set(json, 8);
  return out;
}

test('each kind of malformed file raises SafetensorsError naming the file, the tensor and the problem', async () => {
  const open = (bytes: Uint8Array) => SafetensorsFile.open(bytesSource('bad.safetensors', bytes));
  const e = (tensor: string | undefined, ...f: string[]) => expectSafetensorsError('bad.safetensors', tensor, ...f);
  await assert.rejects(open(new Uint8Array(5)), e(undefined, '5 bytes', 'truncated'));
  const tooBig = new Uint8Array(16);
  new DataView(tooBig.buffer).setBigUint64(0, 2n ** 40n, true);
  await assert.rejects(open(tooBig), e(undefined, '100000000'));
  const beyond = craft('{}', 0);
  new DataView(beyond.buffer).setBigUint64(0, 64n, true);
  await assert.rejects(open(beyond), e(undefined, 'header length is 64', 'truncated'));
  await assert.rejects(open(craft('{"a":', 0)), e(undefined, 'not valid JSON'));
  await assert.rejects(open(craft('[1,2]', 0)), e(undefined, 'start with "{"'));
  await assert.rejects(open(craft('{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}', 4)), e('a', 'unknown dtype', 'F17'));
  await assert.rejects(open(craft('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4)), e('a', 'needs 8 bytes', 'hold 4'));
  await assert.rejects(open(craft('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4)), e('a', 'non-negative integers'));
  await assert.rejects(open(craft('{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}', 4)), e('a', 'run past', 'holds 4 bytes'));
  await assert.rejects(
    open(craft('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}', 6)),
    e('b', 'overlap tensor "a"'),
  );
  await assert.rejects(
    open(craft('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}', 6)),
    e('b', 'gap'),
  );
  await assert.rejects(open(craft('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 5)), e(undefined, 'trailing bytes'));
  await assert.rejects(open(craft('{"__metadata__":{"k":1}}', 0)), e(undefined, '__metadata__', 'string'));
  const invalidUtf8 = craft('{"a"}', 0);
  invalidUtf8[10] = 0xff;
  await assert.rejects(open(invalidUtf8), e(undefined, 'UTF-8'));
  const ok = await open(craft('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2));
  await assert.rejects(ok.read('missing'), e('missing', 'no such tensor', '(a)'));
});

test('a header of a million nested arrays is refused as too deeply nested, naming the file, without exhausting the stack', async () => {
  const open = (bytes: Uint8Array) => SafetensorsFile.open(bytesSource('deep.safetensors', bytes));
  const deep = 1_000_000;
  for (const header of [
    `{"t":${'['.repeat(deep)}${']'.repeat(deep)}}`,
    `{"t":{"dtype":"F32","shape":${'['.repeat(deep)}${']'.repeat(deep)},"data_offsets":[0,0]}}`,
    `{"__metadata__":${'['.repeat(deep)}${']'.repeat(deep)}}`,
  ]) {
    await assert.rejects(open(craft(header, 0)), expectSafetensorsError('deep.safetensors', undefined, 'levels deep', 'at most 3'));
  }
  // Brackets inside strings are not nesting.
  const named = await open(craft('{"[[[[":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1));
  assert.deepEqual(named.tensors.map((t) => t.name), ['[[[[']);
});

test('a file truncated after opening raises SafetensorsError when the lost tensor is read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'st-'));
  try {
    const path = join(dir, 'x.safetensors');
    const bytes = serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [64], data: new Float32Array(64) }]);
    await writeFile(path, bytes);
    const st = await openSafetensors(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 10));
    await assert.rejects(st.read('w'), expectSafetensorsError(path, 'w', 'truncated'));
    await st.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad input to the writer raises SafetensorsError and leaves an existing file untouched', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'st-'));
  try {
    const path = join(dir, 'keep.safetensors');
    const original = serializeSafetensors([{ name: 'w', dtype: 'U8', shape: [1], data: new Uint8Array([1]) }]);
    await writeFile(path, original);
    await assert.rejects(
      writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(2) }]),
      expectSafetensorsError(path, 'w', 'needs 12 bytes', 'has 8'),
    );
    await assert.rejects(
      writeSafetensors(path, [
        { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
        { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      ]),
      expectSafetensorsError(path, 'a', 'twice'),
    );
    // A lazily produced tensor that turns out wrong fails mid-write: the temp file is discarded.
    await assert.rejects(
      writeSafetensors(path, [
        { name: 'a', dtype: 'U8', shape: [4], data: new Uint8Array(4) },
        { name: 'b', dtype: 'F32', shape: [2], data: () => new Float32Array(3) },
      ]),
      expectSafetensorsError(path, 'b', 'needs 8 bytes', 'has 12'),
    );
    await assert.rejects(
      writeSafetensors(path, [{ name: 'c', dtype: 'U8', shape: [1], data: async () => { throw new Error('source failed'); } }]),
      /source failed/,
    );
    assert.deepEqual(new Uint8Array(await readFile(path)), original);
    assert.deepEqual(await readdir(dir), ['keep.safetensors']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('lazily produced tensors are written in turn and read back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'st-'));
  try {
    const path = join(dir, 'lazy.safetensors');
    const produced: string[] = [];
    const tensors: TensorToWrite[] = ['a', 'b', 'c'].map((name, i) => ({
      name,
      dtype: 'F32',
      shape: [2],
      data: async () => {
        produced.push(name);
        return new Float32Array([i, -i]);
      },
    }));
    await writeSafetensors(path, tensors);
    assert.deepEqual(produced, ['a', 'b', 'c']);
    const theirs = npmRead(await readFile(path));
    assert.deepEqual([...new Float32Array(new Uint8Array(theirs.getTensor('c')).buffer)], [2, -2]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the browser-safe modules bundle for the browser with no Node built-in', async () => {
  const { build } = await import('esbuild');
  const src = join(import.meta.dirname, '..', '..', 'packages', 'llama', 'src');
  const result = await build({
    stdin: {
      contents: ['formats/config', 'formats/source', 'formats/safetensors', 'formats/safetensors-header', 'formats/safetensors-write', 'formats/safetensors-checkpoint', 'formats/dtype-convert', 'errors']
        .map((m, i) => `export * as m${i} from './${m}.js';`)
        .join('\n'),
      resolveDir: src,
      loader: 'ts',
    },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
  });
  assert.equal(result.errors.length, 0);
  const code = result.outputFiles[0]!.text;
  assert.ok(code.includes('SafetensorsFile = class'));
  assert.ok(!/from\s+["']node:|require\(["']node:/.test(code));
});
