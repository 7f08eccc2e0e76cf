// The huatuo-train command tree as a program parses it: what a mistyped command says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '@huatuo/cli';

test('a mistyped command is refused as an unknown command naming the commands, not run as the demonstration', async () => {
  let stderr = '';
  const program = buildProgram().exitOverride().configureOutput({ writeErr: (s) => (stderr += s), writeOut: () => {} });
  await assert.rejects(program.parseAsync(['trian'], { from: 'user' }), (e: unknown) => (e as { code?: unknown }).code === 'commander.unknownCommand');
  assert.match(stderr, /unknown command 'trian'; the commands are train, generate, merge, eval, plan, serve, sus, gen-data \(with none, huatuo-train runs the demonstration\)/);
});
