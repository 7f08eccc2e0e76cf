// Seeded pseudo-random numbers: mulberry32 on a 32-bit state, and seed derivation
// from strings by FNV-1a. Every random choice in @huatuo/sus goes through here.

/** A generator of uniform numbers in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator). Given the same integer seed it yields
 * the same sequence on every platform.
 * @example const r = createRng(42); const u = r(); // 0 <= u < 1
 */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 32-bit FNV-1a hash of a string's UTF-8 bytes; used to derive seeds and orders from names. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(s)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Integer in [0, n) from a generator. */
export function randomIndex(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}
