// The huatuo-train command tree as a program parses it: what a mistyped command says, and the
// defaults its help gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '@huatuo/cli';
import { ConfigError, resolveConfig } from '@huatuo/sft';

test('a mistyped command is refused as an unknown command naming the commands, not run as the demonstration', async () => {
  let stderr = '';
  const program = buildProgram().exitOverride().configureOutput({ writeErr: (s) => (stderr += s), writeOut: () => {} });
  await assert.rejects(program.parseAsync(['trian'], { from: 'user' }), (e: unknown) => (e as { code?: unknown }).code === 'commander.unknownCommand');
  assert.match(stderr, /unknown command 'trian'; the commands are train, generate, merge, eval, plan, serve, sus, gen-data \(with none, huatuo-train runs the demonstration\)/);
});

test("train --help gives --gradient-checkpointing's default as a quantized base changes it", () => {
  const help = buildProgram().commands.find((c) => c.name() === 'train')!.helpInformation().replace(/\s+/g, ' ');
  assert.match(help, /--gradient-checkpointing \[bool\] keep only each decoder layer's input .*? \(default: false; true with --quantize int8 or nf4\)/);
});

test("an unknown recipe option is refused naming flags train really has, and their config keys", () => {
  const train = buildProgram().commands.find((c) => c.name() === 'train')!;
  const trainFlags = new Set(train.options.map((o) => o.long));
  for (const unknown of [{ '--base-modle': 'x' }, { baseModle: 'x' }]) {
    assert.throws(() => resolveConfig(unknown), (e: Error) => {
      assert.ok(e instanceof ConfigError, String(e));
      const listed = /the recipe's flags are (.*?) \(or their TrainConfig keys/.exec(e.message)?.[1]?.split(', ') ?? [];
      assert.ok(listed.length > 30, e.message);
      assert.deepEqual(listed.filter((f) => !trainFlags.has(f)), [], 'every flag listed is a flag of huatuo-train train');
      return true;
    });
  }
  // Each listed flag and its key set the same value.
  assert.equal(resolveConfig({ '--base': '/models/llama-7b' }).baseModel, '/models/llama-7b');
  assert.equal(resolveConfig({ baseModel: '/models/llama-7b' }).baseModel, '/models/llama-7b');
});
