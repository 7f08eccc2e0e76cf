// The validation split of HuaTuo's finetune.py: Hugging Face datasets'
// train_test_split(test_size=valSetSize, shuffle=True, seed), reproduced exactly through
// NumPy's PCG64 permutation (test = its first valSetSize indices, train = the rest).

import { ConfigError } from './errors.js';
import { numpyPermutation } from './rng.js';

/** Train and validation sets, and the indices into the input they came from. */
export interface TrainValSplit<T> {
  train: T[];
  val: T[];
  trainIndices: number[];
  valIndices: number[];
}

/**
 * `datasets.Dataset.train_test_split(test_size=valSetSize, shuffle=True, seed=seed)`:
 * permutation = `np.random.default_rng(seed).permutation(n)`, val = permutation[:valSetSize],
 * train = permutation[valSetSize:]. With valSetSize 0 everything trains, in file order,
 * as finetune.py does when val_set_size is 0.
 * @throws ConfigError (flag --val-set-size) when the split would leave no training data.
 * @example splitTrainVal(records, 500, 2023) // HuaTuo: 8,158 train, 500 validation
 */
export function splitTrainVal<T>(items: readonly T[], valSetSize: number, seed: number): TrainValSplit<T> {
  const n = items.length;
  if (!Number.isInteger(valSetSize) || valSetSize < 0) {
    throw new ConfigError('--val-set-size', `expected a non-negative integer, got ${valSetSize}`);
  }
  if (valSetSize === 0) {
    const all = items.map((_, i) => i);
    return { train: items.slice(), val: [], trainIndices: all, valIndices: [] };
  }
  if (valSetSize >= n) {
    throw new ConfigError(
      '--val-set-size',
      `${valSetSize} validation records leave none of the ${n} records to train on; pass a value below ${n} (or 0 for no validation)`,
    );
  }
  const permutation = numpyPermutation(n, seed);
  const valIndices = permutation.slice(0, valSetSize);
  const trainIndices = permutation.slice(valSetSize);
  return { train: trainIndices.map((i) => items[i]!), val: valIndices.map((i) => items[i]!), trainIndices, valIndices };
}
