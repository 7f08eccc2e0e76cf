// The huatuo-train command tree as a program parses it: what a mistyped command says, and the
// defaults its help gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '@huatuo/cli';

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
