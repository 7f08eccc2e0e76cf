// PyTorch .bin reader against the fixtures of scripts/fixtures/make-torch-bin-fixtures.py: values,
// views and strides, ZIP64, and the refusals (malicious globals, legacy format, corrupt archives).
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { TorchBinFile, TorchCheckpointError, bytesSource, f16ToF32, openTensorFile, type TensorInfo } from '@huatuo/llama';

const dir = fileURLToPath(new URL('../fixtures/torch-bin/', import.meta.url));
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Record<string, { dtype: string; shape: number[]; values: number[] }>;
const marker = '/tmp/huatuo-torch-bin-pwned';

function open(file: string, bytes = readFileSync(join(dir, file))): Promise<TorchBinFile> {
  return TorchBinFile.open(bytesSource(file, new Uint8Array(bytes)));
}

/** Row-major values of a tensor's raw bytes, exactly (I64 as numbers; all fixture values are safe integers). */
function decode(info: TensorInfo, bytes: Uint8Array): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (info.dtype === 'I64') return Array.from({ length: bytes.byteLength / 8 }, (_, i) => Number(dv.getBigInt64(8 * i, true)));
  return [];
}

async function checkAll(file: string): Promise<void> {
  const bin = await open(file);
  assert.deepEqual(bin.tensors.map((t) => t.name), Object.keys(expected));
  for (const t of bin.tensors) {
    const want = expected[t.name]!;
    assert.equal(t.dtype, want.dtype, t.name);
    assert.deepEqual(t.shape, want.shape, t.name);
    const got = t.dtype === 'I64' ? decode(t, await bin.read(t.name)) : Array.from(await bin.readAs(t.name, 'f32'));
    assert.deepEqual(got, want.values, `${file}: ${t.name}`);
  }
}

test('state dict values are read exactly: f32, f16, bf16, int64, scalars, parameters, shared-storage views and transposes', async () => {
  await checkAll('state-dict.bin');
});

test('a ZIP64 archive (as torch writes files over 4 GB) reads the same values', async () => {
  await checkAll('zip64.bin');
});

test('an f16 tensor read as f16 gives its bits unchanged (strided view gathered)', async () => {
  const bin = await open('state-dict.bin');
  const bits = await bin.readAs('transposed.f16', 'f16');
  assert.deepEqual(Array.from(f16ToF32(bits)), expected['transposed.f16']!.values);
});

test('tensors sharing one storage point into it at their offsets', async () => {
  const bin = await open('state-dict.bin');
  const whole = bin.info('shared.whole');
  assert.equal(bin.info('shared.slice').offset, whole.offset + 4 * 4);
  assert.equal(bin.info('shared.block').offset, whole.offset + 8 * 4);
});

test('openTensorFile recognises a .bin by its bytes', async () => {
  const f = await openTensorFile(bytesSource('weights', new Uint8Array(readFileSync(join(dir, 'state-dict.bin')))));
  assert.ok(f instanceof TorchBinFile);
});

for (const [file, global] of [
  ['malicious-system.bin', 'posix.system'],
  ['malicious-eval.bin', '__builtin__.eval'], // protocol 2 names Python 3's builtins by their Python 2 module,
] as const) {
  test(`a pickle naming ${global} is refused by name, without running it (${file})`, async () => {
    await assert.rejects(open(file), (err: unknown) => {
      assert.ok(err instanceof TorchCheckpointError);
      assert.match(err.message, new RegExp(`^${file}: .*global ${global.replace('.', '\\.')}.*refused`));
      return true;
    });
    assert.equal(existsSync(marker), false, 'the pickle ran');
  });
}

test('the legacy (pre-1.6) format is refused with how to re-save it', async () => {
  await assert.rejects(open('legacy.bin'), /^TorchCheckpointError: legacy\.bin: is in PyTorch's legacy format.*torch\.save\(torch\.load/);
  await assert.rejects(openTensorFile(bytesSource('legacy.bin', new Uint8Array(readFileSync(join(dir, 'legacy.bin'))))), TorchCheckpointError);
});

test('a compressed archive is refused, saying torch.save stores entries', async () => {
  await assert.rejects(open('compressed.bin'), /^TorchCheckpointError: compressed\.bin: zip entry state-dict\/data\.pkl is compressed \(method 8\)/);
});

test('a truncated or corrupt archive gets an error naming the file', async () => {
  const bytes = readFileSync(join(dir, 'state-dict.bin'));
  for (const cut of [10, 100, bytes.byteLength - 30, bytes.byteLength - 1]) {
    await assert.rejects(open('cut.bin', bytes.subarray(0, cut)), (err: unknown) => {
      assert.ok(err instanceof TorchCheckpointError, String(err));
      assert.match(err.message, /^cut\.bin: .*(truncated|corrupt)/);
      return true;
    });
  }
  // Directory intact, one storage's data cut short: refused on open, before any tensor is read.
  const eocd = bytes.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1'));
  const cdOffset = bytes.readUInt32LE(eocd + 16);
  const shortened = Buffer.concat([bytes.subarray(0, cdOffset - 40), Buffer.alloc(0), bytes.subarray(cdOffset)]);
  shortened.writeUInt32LE(cdOffset - 40, shortened.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1')) + 16);
  await assert.rejects(open('short.bin', shortened), /^TorchCheckpointError: short\.bin: /);
  const garbled = Buffer.from(bytes);
  garbled.fill(0x41, 0x40, 0x80); // inside data.pkl
  await assert.rejects(open('garbled.bin', garbled), /^TorchCheckpointError: garbled\.bin: /);
});

test('opening reads only the directory and the pickle; each tensor then reads its own bytes', async () => {
  const bytes = new Uint8Array(readFileSync(join(dir, 'gqa-model', 'pytorch_model.bin')));
  const inner = bytesSource('pytorch_model.bin', bytes);
  const reads: number[] = [];
  const counting = { name: inner.name, size: inner.size, read: (offset: number, length: number) => (reads.push(length), inner.read(offset, length)) };
  const bin = await TorchBinFile.open(counting);
  const opened = reads.reduce((a, b) => a + b, 0);
  const largest = Math.max(...bin.tensors.map((t) => t.byteLength));
  assert.ok(opened < 16384, `open read ${opened} of ${bytes.byteLength} bytes`);
  reads.length = 0;
  const name = bin.tensors.find((t) => t.byteLength === largest)!.name;
  await bin.read(name);
  assert.deepEqual(reads, [largest]);
});

test('an archive comment (after the end record) does not hide the directory', async () => {
  const bytes = Buffer.from(readFileSync(join(dir, 'state-dict.bin')));
  bytes.writeUInt16LE(5000, bytes.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1')) + 20);
  const bin = await open('commented.bin', Buffer.concat([bytes, Buffer.alloc(5000, 0x20)]));
  assert.deepEqual(Array.from(await bin.readAs('f32', 'f32')), expected['f32']!.values);
});

test('corrupted bytes anywhere give a TorchCheckpointError naming the file or still open, never another exception', async () => {
  const bytes = readFileSync(join(dir, 'state-dict.bin'));
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ at: fc.integer({ min: 0, max: bytes.byteLength - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
      async (edits) => {
        const copy = Buffer.from(bytes);
        for (const { at, value } of edits) copy[at] = value;
        try {
          const bin = await open('fuzz.bin', copy);
          for (const t of bin.tensors) await bin.read(t.name);
        } catch (err) {
          if (!(err instanceof TorchCheckpointError)) throw err;
          assert.match(err.message, /^fuzz\.bin/);
        }
      },
    ),
    { numRuns: 300, seed: 11 },
  );
});
