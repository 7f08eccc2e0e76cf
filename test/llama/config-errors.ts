// The check the config tests share: a config.json refused with a ModelConfigError naming the field and saying why.
import assert from 'node:assert/strict';
import { ModelConfigError } from '@huatuo/llama';

/** Asserts that `fn` throws a ModelConfigError for `field` whose message holds every one of `fragments`. */
export function expectConfigError(fn: () => unknown, field: string | undefined, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelConfigError, `expected ModelConfigError, got ${String(err)}`);
    assert.equal(err.field, field);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}
