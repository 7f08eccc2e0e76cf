// Exhaustive check of the quantizers' decision tables (packages/tensor/src/quant/codes.ts): for every f32 in
// [-2, 2] (about 2.1 billion values, both signs, zeros and subnormals included), the NF4 table and the
// dynamic-map search give nearestCode's answer. A few minutes on one core:
// `node --conditions=source --import tsx scripts/check-quant-tables.ts`.
import { DYNAMIC_CODE, NF4_CODE, nearestCode } from '@huatuo/tensor';
import { NF4_BUCKETS_PER_UNIT, TABLE_RANGE, dynamicCodeOf, dynamicThresholds, nf4Table } from '@huatuo/tensor/internal';

const { bucket, upper } = nf4Table();
const dynamic = dynamicThresholds();
const f = new Float32Array(1 << 20);
const u = new Uint32Array(f.buffer);
const top = 0x40000000; // bit pattern of 2.0
let checked = 0;
let bad = 0;
for (const sign of [0, 0x80000000]) {
  for (let start = 0; start <= top; start += f.length) {
    const count = Math.min(f.length, top + 1 - start);
    for (let i = 0; i < count; i++) u[i] = (sign | (start + i)) >>> 0;
    for (let i = 0; i < count; i++) {
      const x = f[i]!;
      const b = bucket[((x + TABLE_RANGE) * NF4_BUCKETS_PER_UNIT) | 0]!;
      const nf4 = x > upper[b]! ? b + 1 : b;
      const dyn = dynamicCodeOf(dynamic, x);
      if (nf4 !== nearestCode(NF4_CODE, x) || dyn !== nearestCode(DYNAMIC_CODE, x)) {
        if (bad++ < 10) console.log(`x = ${x} (bits 0x${u[i]!.toString(16)}): table ${nf4}/${dyn}, nearestCode ${nearestCode(NF4_CODE, x)}/${nearestCode(DYNAMIC_CODE, x)}`);
      }
    }
    checked += count;
    if ((start & 0x7ffffff) === 0) console.log(`${sign ? '-' : '+'} ${((start / top) * 100).toFixed(0)} %`);
  }
}
console.log(`${checked} f32 values checked, ${bad} disagreements`);
process.exit(bad === 0 ? 0 : 1);
