import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KnowledgeSampler, loadShippedGraph, sampleKey } from '@huatuo/kg';
import type { KgEntity, EntityClass } from '@huatuo/kg';

function entity(kind: EntityClass, name: string, attrs: string[]): KgEntity {
  return { kind, rawClass: kind, name, attributes: Object.fromEntries(attrs.map((a) => [a, [`${name}-${a}`]])) };
}

/** Number of subsets of size lo..hi of n items, counted by brute force over bitmasks. */
function subsetsBetween(n: number, lo: number, hi: number): number {
  let c = 0;
  for (let m = 0; m < 1 << n; m++) {
    let bits = 0;
    for (let i = 0; i < n; i++) if (m & (1 << i)) bits++;
    if (bits >= lo && bits <= hi) c++;
  }
  return c;
}

const smallGraph = fc.array(
  fc.record({ kind: fc.constantFrom<EntityClass>('disease', 'drug', 'symptom'), attrs: fc.integer({ min: 1, max: 5 }) }),
  { minLength: 1, maxLength: 8 },
).map((specs) => specs.map((s, i) => entity(s.kind, `e${i}`, ['a', 'b', 'c', 'd', 'e'].slice(0, s.attrs))));

test('the sampler never repeats an (entity, attribute set) pair and yields every pair before running out', () => {
  fc.assert(
    fc.property(smallGraph, fc.integer(), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 2 }), (entities, seed, lo, extra) => {
      const hi = lo + extra;
      const s = new KnowledgeSampler(entities, { seed, minAttributes: lo, maxAttributes: hi });
      const keys: string[] = [];
      for (let x = s.next(); x !== undefined; x = s.next()) {
        assert.ok(x.attributes.length >= lo && x.attributes.length <= hi);
        assert.equal(x.key, sampleKey(x.entity.kind, x.entity.name, x.attributes));
        keys.push(x.key);
      }
      const expected = entities.reduce((n, e) => n + subsetsBetween(Object.keys(e.attributes).length, lo, hi), 0);
      assert.equal(new Set(keys).size, keys.length);
      assert.equal(keys.length, expected);
    }),
    { numRuns: 150 },
  );
});

test('the same seed gives the same sequence and another seed a different one', async () => {
  const { entities } = await loadShippedGraph();
  const take = (seed: number) => {
    const s = new KnowledgeSampler(entities, { seed, minAttributes: 1, maxAttributes: 2 });
    return Array.from({ length: 50 }, () => s.next()?.key);
  };
  assert.deepEqual(take(7), take(7));
  assert.notDeepEqual(take(7), take(8));
});

test('classes take turns, so class counts differ by at most one while all classes have pairs left', async () => {
  const { entities } = await loadShippedGraph();
  for (const seed of [1, 2, 3]) {
    const s = new KnowledgeSampler(entities, { seed, minAttributes: 1, maxAttributes: 2 });
    const counts: Record<EntityClass, number> = { disease: 0, drug: 0, symptom: 0 };
    for (let i = 0; i < 600; i++) {
      const x = s.next();
      assert.ok(x);
      counts[x.entity.kind]++;
    }
    const v = Object.values(counts);
    assert.ok(Math.max(...v) - Math.min(...v) <= 1, JSON.stringify(counts));
  }
});

test('within a class, entities are used evenly and single attributes are spread evenly', () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer({ min: 2, max: 12 }), (seed, nEntities) => {
      const attrs = ['a', 'b', 'c', 'd'];
      const entities = Array.from({ length: nEntities }, (_, i) => entity('drug', `d${i}`, attrs));
      const s = new KnowledgeSampler(entities, { seed, minAttributes: 1, maxAttributes: 1 });
      const perEntity = new Map<string, number>();
      const perAttr = new Map<string, number>();
      const draws = nEntities * 2;
      for (let i = 0; i < draws; i++) {
        const x = s.next();
        assert.ok(x);
        perEntity.set(x.entity.name, (perEntity.get(x.entity.name) ?? 0) + 1);
        perAttr.set(x.attributes[0] as string, (perAttr.get(x.attributes[0] as string) ?? 0) + 1);
      }
      // Two full passes: every entity exactly twice.
      assert.deepEqual([...new Set(perEntity.values())], [2]);
      const a = attrs.map((k) => perAttr.get(k) ?? 0);
      assert.ok(Math.max(...a) - Math.min(...a) <= 2, `attribute counts ${a.join(',')}`);
    }),
    { numRuns: 100 },
  );
});
