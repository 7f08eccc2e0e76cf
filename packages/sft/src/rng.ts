// NumPy's default generator in TypeScript: SeedSequence seeding, the PCG64 bit
// generator and Generator.permutation, bit for bit, so that a split made with
// `np.random.default_rng(seed).permutation(n)` (as Hugging Face datasets'
// train_test_split does) comes out identical here.

const M32 = 0xffffffff;
const M64 = (1n << 64n) - 1n;
const M128 = (1n << 128n) - 1n;

// SeedSequence constants (numpy/random/bit_generator.pyx).
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;
const POOL_SIZE = 4;

// PCG64's 128-bit LCG multiplier (PCG_DEFAULT_MULTIPLIER_128).
const PCG_MULT = (2549297995355413924n << 64n) | 4865540595714422341n;

/** An entropy value NumPy accepts as a seed: a non-negative integer or a list of them. */
export type SeedEntropy = number | bigint | readonly (number | bigint)[];

function mul32(a: number, b: number): number {
  return Math.imul(a, b) >>> 0;
}

/** Splits a non-negative integer into little-endian 32-bit words (NumPy's _coerce_to_uint32_array). */
function toUint32Words(value: number | bigint): number[] {
  let v = BigInt(value);
  if (v < 0n) throw new RangeError(`seed: expected a non-negative integer, got ${value}`);
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new RangeError(`seed: expected a safe integer, got ${value}; pass a bigint for larger seeds`);
  }
  if (v === 0n) return [0];
  const words: number[] = [];
  while (v > 0n) {
    words.push(Number(v & 0xffffffffn));
    v >>= 32n;
  }
  return words;
}

/**
 * The 4-word entropy pool of `np.random.SeedSequence(entropy)` (no spawn key).
 * @example seedSequencePool(2023).length === 4
 */
export function seedSequencePool(entropy: SeedEntropy): number[] {
  const words = Array.isArray(entropy)
    ? (entropy as readonly (number | bigint)[]).flatMap((e) => toUint32Words(e))
    : toUint32Words(entropy as number | bigint);
  let hashConst = INIT_A;
  const hashmix = (value: number): number => {
    value = (value ^ hashConst) >>> 0;
    hashConst = mul32(hashConst, MULT_A);
    value = mul32(value, hashConst);
    return (value ^ (value >>> XSHIFT)) >>> 0;
  };
  const mix = (x: number, y: number): number => {
    const r = (mul32(MIX_MULT_L, x) - mul32(MIX_MULT_R, y)) >>> 0;
    return (r ^ (r >>> XSHIFT)) >>> 0;
  };
  const pool = new Array<number>(POOL_SIZE).fill(0);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < words.length ? words[i]! : 0);
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
  }
  for (let src = POOL_SIZE; src < words.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst]!, hashmix(words[src]!));
  }
  return pool;
}

/** `SeedSequence(entropy).generate_state(nWords, np.uint64)`. */
export function seedSequenceState64(entropy: SeedEntropy, nWords: number): bigint[] {
  const pool = seedSequencePool(entropy);
  let hashConst = INIT_B;
  const words32: number[] = [];
  for (let i = 0; i < nWords * 2; i++) {
    let v = (pool[i % POOL_SIZE]! ^ hashConst) >>> 0;
    hashConst = mul32(hashConst, MULT_B);
    v = mul32(v, hashConst);
    words32.push((v ^ (v >>> XSHIFT)) >>> 0);
  }
  const out: bigint[] = [];
  for (let i = 0; i < nWords; i++) out.push(BigInt(words32[2 * i]!) | (BigInt(words32[2 * i + 1]!) << 32n));
  return out;
}

/**
 * NumPy's PCG64 bit generator (XSL-RR output on a 128-bit LCG), seeded as
 * `np.random.default_rng(seed)` seeds it.
 * @example new Pcg64(2023).permutation(5) // same as np.random.default_rng(2023).permutation(5)
 */
export class Pcg64 {
  private state = 0n;
  private inc = 0n;
  // NumPy hands out a 64-bit draw as two 32-bit halves, low half first.
  private hasUint32 = false;
  private uinteger = 0;

  constructor(seed: SeedEntropy) {
    const [s0, s1, i0, i1] = seedSequenceState64(seed, 4) as [bigint, bigint, bigint, bigint];
    const initState = (s0 << 64n) | s1;
    const initSeq = (i0 << 64n) | i1;
    this.inc = ((initSeq << 1n) | 1n) & M128;
    this.step();
    this.state = (this.state + initState) & M128;
    this.step();
  }

  private step(): void {
    this.state = (this.state * PCG_MULT + this.inc) & M128;
  }

  /** The next 64-bit output (`bit_generator.random_raw()`). */
  nextUint64(): bigint {
    this.step();
    const s = this.state;
    const xored = ((s >> 64n) ^ s) & M64;
    const rot = s >> 122n;
    return ((xored >> rot) | (xored << ((64n - rot) & 63n))) & M64;
  }

  /** The next 32-bit output, as NumPy's `next_uint32` buffers it. */
  nextUint32(): number {
    if (this.hasUint32) {
      this.hasUint32 = false;
      return this.uinteger;
    }
    const next = this.nextUint64();
    this.hasUint32 = true;
    this.uinteger = Number(next >> 32n);
    return Number(next & 0xffffffffn);
  }

  /** A uniform double in [0, 1) (`Generator.random()`). */
  nextDouble(): number {
    return Number(this.nextUint64() >> 11n) * 2 ** -53;
  }

  /** A uniform integer in [0, max] by masked rejection (NumPy's `random_interval`). */
  randomInterval(max: number): number {
    if (max === 0) return 0;
    if (!Number.isSafeInteger(max) || max < 0 || max > M32) {
      throw new RangeError(`randomInterval: max must be an integer in [0, 2^32 - 1], got ${max}`);
    }
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    let value: number;
    do value = (this.nextUint32() & mask) >>> 0;
    while (value > max);
    return value;
  }

  /** Shuffles `items` in place as `Generator.shuffle` does a 1-d array (Fisher-Yates from the end). */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i >= 1; i--) {
      const j = this.randomInterval(i);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }

  /** `Generator.permutation(n)`: a shuffled `[0, 1, ..., n - 1]`. */
  permutation(n: number): number[] {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`permutation: n must be a non-negative integer, got ${n}`);
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
}

/**
 * `np.random.default_rng(seed).permutation(n)`.
 * @example numpyPermutation(8658, 2023) // the order behind HuaTuo's 500-record validation split
 */
export function numpyPermutation(n: number, seed: SeedEntropy): number[] {
  return new Pcg64(seed).permutation(n);
}
