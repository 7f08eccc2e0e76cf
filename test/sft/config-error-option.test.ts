import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONFIG_OPTIONS, ConfigError, resolveConfig, splitTrainVal } from '@huatuo/sft';

/** The ConfigError `run` throws. */
function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('a config value refused in resolveConfig names the option key the caller wrote beside its flag', () => {
  const byKey = configError(() => resolveConfig({ valSetSize: -1 }));
  assert.equal(byKey.message, '--val-set-size (valSetSize): expected a value >= 0, got -1');
  assert.equal(byKey.flag, '--val-set-size');
  assert.equal(byKey.option, 'valSetSize');
  const byFlag = configError(() => resolveConfig({ '--micro-batch': '0' }));
  assert.match(byFlag.message, /^--micro-batch \(microBatchSize\): expected a value >= 1, got "0"/);
  assert.equal(byFlag.option, 'microBatchSize');
});

test("checks across values and later stages name the config key of the flag they blame", () => {
  const relation = configError(() => resolveConfig({ batchSize: 8, microBatchSize: 3 }));
  assert.match(relation.message, /^--micro-batch \(microBatchSize\): 3 must divide --batch-size 8/);
  const split = configError(() => splitTrainVal([1, 2, 3], 3, 2023));
  assert.match(split.message, /^--val-set-size \(valSetSize\): 3 validation records leave none of the 3 records/);
  assert.equal(split.option, 'valSetSize');
});

test('every recipe flag maps to its own config key, and a flag that is no config key keeps its text', () => {
  for (const o of CONFIG_OPTIONS) {
    const e = new ConfigError(o.flag, 'refused');
    assert.equal(e.option, o.key, o.flag);
    assert.equal(e.message, `${o.flag} (${o.key}): refused`);
  }
  const other = new ConfigError('--max-model-len', 'expected a whole number');
  assert.equal(other.option, undefined);
  assert.equal(other.message, '--max-model-len: expected a whole number');
});

test('an unknown option key is named as written', () => {
  const e = configError(() => resolveConfig({ valSetSze: 10 }));
  assert.match(e.message, /^--val-set-sze \(valSetSze\): unknown option; the recipe's flags are --data, /);
  assert.equal(e.option, 'valSetSze');
  const flag = configError(() => resolveConfig({ '--val-set-sze': 10 }));
  assert.match(flag.message, /^--val-set-sze: unknown option/);
  assert.equal(flag.option, undefined);
});
