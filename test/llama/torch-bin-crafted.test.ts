// Crafted PyTorch .bin archives (hand-built zips around hand-written pickles): hostile or broken input
// gets a TorchCheckpointError naming the file, never a native exception or a read outside the file.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { TorchBinFile, TorchCheckpointError, bytesSource } from '@huatuo/llama';

/** A stored (uncompressed) zip of `entries`, as torch.save lays it out. */
function zip(entries: Record<string, Uint8Array>): Uint8Array {
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
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt32LE(data.byteLength, 20);
    central.writeUInt32LE(data.byteLength, 24);
    central.writeUInt16LE(n.byteLength, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, Buffer.from(data));
    centrals.push(central, n);
    offset += 30 + n.byteLength + data.byteLength;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(centrals.length / 2, 8);
  eocd.writeUInt16LE(centrals.length / 2, 10);
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

test('an oversized byteorder entry is refused by its size, not read whole and quoted back', async () => {
  const order = Buffer.alloc(1 << 20, 'x');
  const bytes = zip({ 'archive/byteorder': order, 'archive/data.pkl': new Uint8Array([0x80, 0x02, 0x7d, 0x2e]) });
  await refused('order.bin', TorchBinFile.open(bytesSource('order.bin', bytes)), /byteorder entry has 1048576 bytes/);
  const opened = await TorchBinFile.open(bytesSource('ok.bin', zip({ 'archive/byteorder': Buffer.from('little'), 'archive/data.pkl': new Uint8Array([0x80, 0x02, 0x7d, 0x2e]) })));
  assert.equal(opened.tensors.length, 0);
});
