import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { krippendorffAlpha } from '@huatuo/sus';

const N = null;

// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
// 12 units, missing values; published alphas nominal .743, ordinal .815, interval .849, ratio .797.
const example2011C = [
  [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
  [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
  [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
  [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
];

test('alpha reproduces the four published values of Krippendorff 2011 section C (4 observers, missing data) to 3 decimals', () => {
  const published = { nominal: 0.743, ordinal: 0.815, interval: 0.849, ratio: 0.797 } as const;
  for (const [level, value] of Object.entries(published) as Array<[keyof typeof published, number]>) {
    const a = krippendorffAlpha(example2011C, level);
    assert.equal(a.toFixed(3), value.toFixed(3), `${level}: got ${a}, published ${value}`);
  }
});

test('alpha reproduces Krippendorff 2011 section A (binary data, 2 observers, 10 units): .095', () => {
  const a = krippendorffAlpha([[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]], 'nominal');
  assert.equal(a.toFixed(3), '0.095');
});

test('alpha reproduces Krippendorff 2011 section B (nominal data a-e, 2 observers, 12 units): .692', () => {
  const code = (s: string): number[] => s.split('').map((c) => 'abcde'.indexOf(c) + 1);
  const a = krippendorffAlpha([code('aabbdcccedda'), code('babbbccceddd')], 'nominal');
  assert.equal(a.toFixed(3), '0.692');
});

test('alpha ignores units with a single value and the order of coders and units', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }), { minLength: 6, maxLength: 6 }), { minLength: 2, maxLength: 5 }),
      fc.constantFrom('nominal', 'ordinal', 'interval', 'ratio' as const),
      (data, level) => {
        const a = krippendorffAlpha(data, level);
        const coders = krippendorffAlpha([...data].reverse(), level);
        const units = krippendorffAlpha(data.map((row) => [...row].reverse()), level);
        const extra = krippendorffAlpha(data.map((row, i) => [...row, i === 0 ? 2 : null]), level);
        for (const b of [coders, units, extra]) assert.ok((Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
      },
    ),
  );
});

test('alpha is 1 when every pairable unit agrees and values vary across units', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 3, maxLength: 20 }), fc.integer({ min: 2, max: 5 }), (truth, coders) => {
      fc.pre(new Set(truth).size > 1);
      const data = Array.from({ length: coders }, () => truth);
      for (const level of ['nominal', 'ordinal', 'interval', 'ratio'] as const) assert.equal(krippendorffAlpha(data, level), 1);
    }),
  );
});
