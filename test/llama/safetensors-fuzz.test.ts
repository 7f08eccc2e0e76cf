import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import safetensorsNpm from 'safetensors';
import {
  SafetensorsError,
  SafetensorsFile,
  bytesSource,
  safetensorsDTypeSizes,
  serializeSafetensors,
  type SafetensorsDType,
  type TensorToWrite,
} from '@huatuo/llama';

const { SafeTensor } = safetensorsNpm as unknown as {
  SafeTensor: new (bytes: Uint8Array) => { getTensor(name: string): Uint8Array };
};

const dtypes = Object.keys(safetensorsDTypeSizes) as SafetensorsDType[];
const fileName = 'fuzz.safetensors';

const tensorArb = fc
  .record({
    dtype: fc.constantFrom(...dtypes),
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
    seed: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ dtype, shape, seed }) => {
    const n = shape.reduce((a, b) => a * b, 1) * safetensorsDTypeSizes[dtype];
    return { dtype, shape, data: new Uint8Array(n).map((_, i) => (seed + i * 37) & 0xff) };
  });

const tensorsArb = fc
  .uniqueArray(fc.string({ minLength: 0, maxLength: 12 }).filter((s) => s !== '__metadata__'), { maxLength: 6 })
  .chain((names) => fc.tuple(...names.map((name) => tensorArb.map((t): TensorToWrite => ({ name, ...t })))))
  .map((ts) => ts as TensorToWrite[]);

test('random valid files round-trip through our reader and the npm safetensors reader', async () => {
  await fc.assert(
    fc.asyncProperty(tensorsArb, fc.boolean(), async (tensors, referenceOrder) => {
      const bytes = serializeSafetensors(tensors, { order: referenceOrder ? 'reference' : 'given' });
      const st = await SafetensorsFile.open(bytesSource(fileName, bytes));
      const theirs = new SafeTensor(bytes);
      assert.equal(st.tensors.length, tensors.length);
      for (const t of tensors) {
        const want = t.data as Uint8Array;
        assert.deepEqual(await st.read(t.name), want);
        assert.deepEqual(new Uint8Array(theirs.getTensor(t.name)), want);
        assert.equal(st.info(t.name).dtype, t.dtype);
        assert.deepEqual(st.info(t.name).shape, t.shape);
      }
    }),
    { numRuns: 300 },
  );
});

type Header = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;

function splitFile(bytes: Uint8Array): { header: Header; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Header;
  return { header, data: bytes.subarray(8 + n) };
}

function joinFile(header: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Corruptions that each make any file invalid; `pick` chooses where. */
const corruptions: Record<string, (bytes: Uint8Array, pick: number) => Uint8Array | undefined> = {
  truncate: (b, pick) => b.subarray(0, pick % b.length),
  headerLength: (b, pick) => {
    const out = b.slice();
    const n = new DataView(out.buffer).getBigUint64(0, true);
    const delta = BigInt((pick % 64) + 1) * (pick % 2 === 0 ? 1n : -1n);
    const m = n + delta < 0n ? n + BigInt(pick % 1000) + 1n : n + delta;
    new DataView(out.buffer).setBigUint64(0, pick % 7 === 0 ? 2n ** 63n + m : m, true);
    return out;
  },
  mangleJson: (b, pick) => {
    const out = b.slice();
    const n = Number(new DataView(out.buffer).getBigUint64(0, true));
    out[8 + (pick % n)] = pick % 3 === 0 ? 0xff : 0x00; // NUL or invalid UTF-8: never valid JSON
    return out;
  },
  overlap: (b, pick) => {
    const { header, data } = splitFile(b);
    const names = Object.keys(header).filter((k) => k !== '__metadata__' && header[k]!.data_offsets[1] > header[k]!.data_offsets[0]);
    if (names.length < 2) return undefined;
    const a = header[names[pick % names.length]!]!;
    const c = header[names[(pick + 1) % names.length]!]!;
    a.data_offsets = [...c.data_offsets];
    a.shape = [...c.shape];
    a.dtype = c.dtype;
    return joinFile(header, data);
  },
  outOfRange: (b, pick) => {
    const { header, data } = splitFile(b);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    if (names.length === 0) return undefined;
    const t = header[names[pick % names.length]!]!;
    t.data_offsets = [t.data_offsets[0], data.length + 1 + (pick % 100)];
    return joinFile(header, data);
  },
  wrongByteCount: (b, pick) => {
    const { header, data } = splitFile(b);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    if (names.length === 0) return undefined;
    const t = header[names[pick % names.length]!]!;
    const count = t.shape.reduce((x, y) => x * y, 1);
    t.shape = [count + 1 + (pick % 3)];
    return joinFile(header, data);
  },
  unknownDtype: (b, pick) => {
    const { header, data } = splitFile(b);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    if (names.length === 0) return undefined;
    header[names[pick % names.length]!]!.dtype = ['F17', 'f32', 'Q4_0', '', 'FLOAT'][pick % 5]!;
    return joinFile(header, data);
  },
};

async function openAndReadAll(bytes: Uint8Array): Promise<void> {
  const st = await SafetensorsFile.open(bytesSource(fileName, bytes));
  for (const t of st.tensors) await st.read(t.name);
}

function isNamedSafetensorsError(err: unknown): boolean {
  return err instanceof SafetensorsError && err.file === fileName && err.message.startsWith(fileName);
}

test('every corruption of a valid file raises SafetensorsError naming the file, never another exception', async () => {
  await fc.assert(
    fc.asyncProperty(tensorsArb, fc.constantFrom(...Object.keys(corruptions)), fc.nat(), async (tensors, kind, pick) => {
      const valid = serializeSafetensors(tensors);
      const bad = corruptions[kind]!(valid, pick);
      fc.pre(bad !== undefined);
      await assert.rejects(openAndReadAll(bad!), isNamedSafetensorsError, `${kind} was accepted`);
    }),
    { numRuns: 1000 },
  );
});

test('arbitrary bytes either open as a valid file or raise SafetensorsError, never another exception', async () => {
  const header = fc.oneof(
    fc.json(),
    fc.string().map((s) => `{${s}}`),
    fc.dictionary(
      fc.string({ maxLength: 4 }),
      fc.record({
        dtype: fc.oneof(fc.constantFrom(...dtypes), fc.string({ maxLength: 3 }), fc.integer()),
        shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 4 }), { maxLength: 3 }), fc.jsonValue()),
        data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -1, max: 40 }), fc.integer({ min: -1, max: 40 })), fc.jsonValue()),
      }),
    ).map((d) => JSON.stringify(d)),
  );
  const fileArb = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(header, fc.uint8Array({ maxLength: 48 })).map(([h, data]) => {
      const json = new TextEncoder().encode(h);
      const out = new Uint8Array(8 + json.length + data.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
      out.set(json, 8);
      out.set(data, 8 + json.length);
      return out;
    }),
  );
  await fc.assert(
    fc.asyncProperty(fileArb, async (bytes) => {
      try {
        await openAndReadAll(bytes);
      } catch (err) {
        assert.ok(isNamedSafetensorsError(err), `unexpected ${String(err)}`);
      }
    }),
    { numRuns: 2000 },
  );
});
