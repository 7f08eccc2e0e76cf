// Seeded random numbers generated on the host, so the same seed gives the same tensor on every
// device: a 32-bit counter-based generator (SplitMix32 hashing of seed and counter) and Box-Muller.

/** A seeded stream of uniform numbers in [0, 1) with 2^-32 resolution. */
export class Generator {
  private counter = 0;

  constructor(readonly seed: number) {}

  /** Next raw 32-bit value. */
  nextU32(): number {
    return hash32(this.seed, this.counter++);
  }

  /** Next uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /**
   * Fills `out` with uniforms in [low, high) drawn with `bits` random bits each (k / 2^bits, as
   * torch's uniform: 24 for f32, 11 for f16), so that rounding to the element type never reaches
   * 1: a 32-bit draw rounds to 1.0 in f32 once in 2^25 and in f16 once in 2^12.
   */
  fillUniform(out: Float32Array, low = 0, high = 1, bits = 24): Float32Array {
    const shift = 32 - bits;
    const scale = 2 ** -bits;
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * ((this.nextU32() >>> shift) * scale);
    return out;
  }

  /** Fills `out` with standard normals (Box-Muller over pairs of uniforms), scaled and shifted. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i += 2) {
      const u1 = 1 - this.uniform(); // (0, 1]: log stays finite
      const u2 = this.uniform();
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < out.length) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return out;
  }

  /** A new independent generator derived from this one (for per-op seeds). */
  fork(): Generator {
    return new Generator(this.nextU32());
  }

  /** The position in the stream, for checkpoints. */
  get state(): { seed: number; counter: number } {
    return { seed: this.seed, counter: this.counter };
  }

  static fromState(state: { seed: number; counter: number }): Generator {
    const g = new Generator(state.seed);
    g.counter = state.counter;
    return g;
  }
}

/** Hash of (seed, counter) to 32 bits; the same function the dropout kernel uses on the GPU. */
export function hash32(seed: number, counter: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b9) + Math.imul(counter >>> 0, 0x85ebca6b) + 0x6a09e667) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

let globalGenerator = new Generator(0x5eed);

/** Seeds the default generator used when an op is given no seed (as torch.manual_seed). */
export function manualSeed(seed: number): void {
  globalGenerator = new Generator(seed >>> 0);
}

/** The default generator. */
export function defaultGenerator(): Generator {
  return globalGenerator;
}
