// Loaded before every test file: property tests draw from a fixed seed so a run is reproducible
// (FC_SEED=<n> picks another seed, FC_SEED=random a fresh one each run; failures print theirs).
import fc from 'fast-check';

const requested = process.env.FC_SEED ?? '20231125';
if (requested !== 'random') {
  const seed = Number(requested);
  if (!Number.isInteger(seed)) throw new Error(`FC_SEED must be an integer or "random", got ${requested}`);
  fc.configureGlobal({ seed });
}
