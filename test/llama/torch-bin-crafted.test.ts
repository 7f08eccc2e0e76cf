// Crafted PyTorch .bin archives (hand-built zips around hand-written pickles): hostile or broken input
// gets a TorchCheckpointError naming the file, never a native exception or a read outside the file.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { SafetensorsFile, TorchBinFile, TorchCheckpointError, bytesSource, openTensorFile } from '@huatuo/llama';

/** A stored (uncompressed) zip of `entries`, as torch.save lays it out; `central` overrides an entry's directory size and extra field. */
function zip(entries: Record<string, Uint8Array>, central: Record<string, { size: number; extra: Buffer }> = {}): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(entries)) {
    const n = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt32LE(data.byteLength, 18);
    local.writeUInt32LE(data.byteLength, 22);
    local.writeUInt16LE(n.byteLength, 26);
    const override = central[name];
    const record = Buffer.alloc(46);
    record.writeUInt32LE(0x02014b50, 0);
    record.writeUInt32LE(override?.size ?? data.byteLength, 20);
    record.writeUInt32LE(override?.size ?? data.byteLength, 24);
    record.writeUInt16LE(n.byteLength, 28);
    record.writeUInt16LE(override?.extra.byteLength ?? 0, 30);
    record.writeUInt32LE(offset, 42);
    locals.push(local, n, Buffer.from(data));
    centrals.push(Buffer.concat([record, n, override?.extra ?? Buffer.alloc(0)]));
    offset += 30 + n.byteLength + data.byteLength;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(centrals.length, 8);
  eocd.writeUInt16LE(centrals.length, 10);
  eocd.writeUInt32LE(cd.byteLength, 12);
  eocd.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, cd, eocd]));
}

function openPickle(name: string, pickle: Uint8Array): Promise<TorchBinFile> {
  return TorchBinFile.open(bytesSource(name, zip({ 'archive/data.pkl': pickle })));
}

async function refused(name: string, opening: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(opening, (err: unknown) => {
    assert.ok(err instanceof TorchCheckpointError, `not a TorchCheckpointError: ${String(err)}`);
    assert.ok(err.message.startsWith(`${name}: `), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

test('APPENDS of a very long list is interpreted, not a native stack overflow', async () => {
  const items = 300_000;
  const pickle = Buffer.concat([Buffer.from([0x80, 0x02, 0x5d, 0x28]), Buffer.alloc(2 * items, Buffer.from([0x4b, 0x01])), Buffer.from([0x65, 0x2e])]);
  await refused('appends.bin', openPickle('appends.bin', pickle), /data\.pkl holds a list, not a state dict/);
});

// A JS array past 2^27 items is a fatal error, not an exception: 140 MB of NONE opcodes (under the 256 MiB data.pkl
// limit) ended the process, and 16 MB of EMPTY_DICT took some 4 GB. A state dict's pickle makes about 30 values per tensor.
test('a pickle pushing or memoizing more than 2^21 values is refused when it reaches the bound, not interpreted to the end', async () => {
  const values = 2 ** 21;
  for (const [name, body] of [
    ['nones.bin', Buffer.alloc(values + 1, 0x4e)], // NONE
    ['dicts.bin', Buffer.alloc(values + 1, 0x7d)], // EMPTY_DICT
    ['memo.bin', Buffer.concat([Buffer.from([0x4e]), Buffer.alloc(values, 0x94)])], // NONE, then MEMOIZE
  ] as const) {
    const pickle = Buffer.concat([Buffer.from([0x80, 0x02]), body, Buffer.from([0x2e])]);
    await refused(name, openPickle(name, pickle), new RegExp(`data\\.pkl byte ${2 + values}: the pickle makes more than ${values} values, where a state dict's makes about 30 per tensor`));
  }
});

test('a central directory of gigabytes is refused by its size, not read whole', async () => {
  // An 8 GiB file whose end record declares a 4 GiB central directory, read through a source that serves zeros
  // and refuses any large read (a real one would allocate it, then make an entry object per 46 bytes).
  const size = 2 ** 33;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(1, 8);
  eocd.writeUInt16LE(1, 10);
  eocd.writeUInt32LE(2 ** 32 - 2, 12);
  eocd.writeUInt32LE(4096, 16);
  const reads: number[] = [];
  const source = {
    name: 'huge.bin',
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      reads.push(length);
      if (length > 2 ** 20) throw new Error(`read of ${length} bytes`);
      const out = new Uint8Array(length);
      if (offset === 0) out.set([0x50, 0x4b, 0x03, 0x04]);
      const tail = size - eocd.byteLength - offset;
      if (tail >= 0 && tail < length) out.set(eocd, tail);
      return out;
    },
  };
  await refused('huge.bin', TorchBinFile.open(source), /central directory has 4294967294 bytes, more than the 67108864 a torch\.save checkpoint's list of entries ever needs/);
  assert.ok(Math.max(...reads) <= 2 ** 16 + 22, `reads of ${reads.join(', ')} bytes`);
});

test('an oversized byteorder entry is refused by its size, not read whole and quoted back', async () => {
  const order = Buffer.alloc(1 << 20, 'x');
  const bytes = zip({ 'archive/byteorder': order, 'archive/data.pkl': new Uint8Array([0x80, 0x02, 0x7d, 0x2e]) });
  await refused('order.bin', TorchBinFile.open(bytesSource('order.bin', bytes)), /byteorder entry has 1048576 bytes/);
  const opened = await TorchBinFile.open(bytesSource('ok.bin', zip({ 'archive/byteorder': Buffer.from('little'), 'archive/data.pkl': new Uint8Array([0x80, 0x02, 0x7d, 0x2e]) })));
  assert.equal(opened.tensors.length, 0);
});

test('a ZIP64 extra field declaring more bytes than the directory holds is corrupt, not a DataView RangeError', async () => {
  const pkl = new Uint8Array([0x80, 0x02, 0x7d, 0x2e]);
  // The size is saturated, so its 64-bit value is read from the extra field, which claims 100 bytes but has none.
  const bytes = zip({ 'archive/data.pkl': pkl }, { 'archive/data.pkl': { size: 0xffffffff, extra: Buffer.from([0x01, 0x00, 0x64, 0x00]) } });
  await refused('extra.bin', TorchBinFile.open(bytesSource('extra.bin', bytes)), /ZIP64 field|corrupt/);
});

test('a safetensors file whose header length starts like a pickle (0x80, 0x03) opens as safetensors, not as a legacy .bin', async () => {
  // Header lengths 640, 896, 1152 and 1408 bytes begin 80 02, 80 03, 80 04 and 80 05: the bytes that open a pickle.
  for (const length of [640, 896, 1152, 1408]) {
    const json = JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });
    const header = Buffer.from(json.padEnd(length, ' '));
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(length));
    const bytes = new Uint8Array(Buffer.concat([size, header, Buffer.from(new Float32Array([1.5, -2]).buffer)]));
    assert.equal(bytes[0], 0x80);
    const f = await openTensorFile(bytesSource(`h${length}.safetensors`, bytes));
    assert.ok(f instanceof SafetensorsFile, `header of ${length} bytes`);
    assert.deepEqual(Array.from(await f.readAs('w', 'f32')), [1.5, -2]);
  }
  // The legacy format (its pickle opens with torch's magic number) is still told apart, in protocols 2 and 4 alike.
  for (const head of ['80028a0a6cfc9c46f9206aa850192e', '8004950d000000000000008a0a6cfc9c46f9206aa850192e']) {
    await refused('legacy.bin', openTensorFile(bytesSource('legacy.bin', new Uint8Array(Buffer.from(`${head}${'00'.repeat(64)}`, 'hex')))), /legacy format/);
  }
});
