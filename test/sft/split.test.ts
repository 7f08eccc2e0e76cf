import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { loadRecordsSync, ConfigError, Pcg64, numpyPermutation, splitTrainVal } from '@huatuo/sft';
import { seedSequencePool } from '@huatuo/sft/internal';

// Made by scripts/fixtures/make-split-fixture.py with NumPy.
interface Fixture {
  numpy: string;
  permutations: { n: number; seed: string | string[]; permutation: number[] }[];
  raw: { seed: string; pool: number[]; uint64: string[] }[];
  doubles2023: number[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/sft/numpy-permutations.json', import.meta.url), 'utf8')) as Fixture;
const seedOf = (s: string | string[]) => (Array.isArray(s) ? s.map(BigInt) : BigInt(s));

test("SeedSequence pools and PCG64 raw draws equal NumPy's", () => {
  for (const r of fixture.raw) {
    assert.deepEqual(seedSequencePool(BigInt(r.seed)), r.pool, `pool, seed ${r.seed}`);
    const g = new Pcg64(BigInt(r.seed));
    assert.deepEqual(r.uint64.map(() => g.nextUint64().toString()), r.uint64, `raw draws, seed ${r.seed}`);
  }
  const g = new Pcg64(2023);
  assert.deepEqual(fixture.doubles2023.map(() => g.nextDouble()), fixture.doubles2023);
});

test("permutations equal NumPy's Generator.permutation for every fixture case, 8,658 with seed 2023 included", () => {
  for (const c of fixture.permutations) {
    assert.deepEqual(numpyPermutation(c.n, seedOf(c.seed)), c.permutation, `n ${c.n}, seed ${String(c.seed)}`);
  }
});

const huatuo = loadRecordsSync(fileURLToPath(new URL('../../../shared/data/huatuo/llama_data.json', import.meta.url))).records;

test("HuaTuo's split holds 500 validation and 8,158 training records, the validation set being the permutation's first 500", () => {
  const split = splitTrainVal(huatuo, 500, 2023);
  assert.equal(split.val.length, 500);
  assert.equal(split.train.length, 8158);
  const perm = fixture.permutations.find((c) => c.n === 8658 && c.seed === '2023')!.permutation;
  assert.deepEqual(split.valIndices, perm.slice(0, 500));
  assert.deepEqual(split.trainIndices, perm.slice(500));
  assert.equal(split.val[0], huatuo[perm[0]!]);
});

test('the split is deterministic for a seed and changes with it', () => {
  const a = splitTrainVal(huatuo, 500, 2023);
  const b = splitTrainVal(huatuo, 500, 2023);
  const c = splitTrainVal(huatuo, 500, 42);
  assert.deepEqual(a.valIndices, b.valIndices);
  assert.notDeepEqual(a.valIndices, c.valIndices);
});

test('train and validation indices partition the input for any size', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 400 }), fc.integer({ min: 0, max: 2 ** 31 }), fc.nat(), (n, seed, v) => {
      const val = v % n;
      const items = Array.from({ length: n }, (_, i) => i);
      const s = splitTrainVal(items, val, seed);
      assert.equal(s.val.length, val);
      assert.equal(s.train.length, n - val);
      assert.deepEqual([...s.train, ...s.val].sort((x, y) => x - y), items);
    }),
  );
});

test('no validation set keeps every record in file order', () => {
  const s = splitTrainVal(['a', 'b', 'c'], 0, 2023);
  assert.deepEqual(s.train, ['a', 'b', 'c']);
  assert.deepEqual(s.val, []);
});

test('a validation set as large as the data is refused, naming --val-set-size', () => {
  assert.throws(() => splitTrainVal(['a', 'b'], 2, 2023), (e: unknown) => e instanceof ConfigError && e.flag === '--val-set-size' && /none of the 2 records/.test(e.message));
  assert.throws(() => splitTrainVal(['a', 'b'], 1.5, 2023), ConfigError);
});
