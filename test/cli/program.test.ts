// The huatuo-train command tree as a program parses it: what a mistyped command says, and the
// defaults its help gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '@huatuo/cli';
import { ConfigError, resolveConfig } from '@huatuo/sft';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

test('train --help names every field --init-adapter takes from the adapter, modules_to_save included', () => {
  const help = buildProgram().commands.find((c) => c.name() === 'train')!.helpInformation().replace(/\s+/g, ' ');
  assert.match(help, /--init-adapter <dir> start from an existing PEFT adapter folder, training it as it is \(its r, alpha, dropout, target modules, use_rslora, use_dora and modules_to_save\)/);
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

test("--version gives the version in the package.json beside the package's code, wherever it is installed", () => {
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
  // A copy of the package with another version, its own dependencies beside it and its siblings above.
  const project = mkdtempSync(join(tmpdir(), 'huatuo-cli-version-'));
  const installed = join(project, 'cli');
  cpSync(join(repoRoot, 'packages/cli/src'), join(installed, 'src'), { recursive: true });
  writeFileSync(join(installed, 'package.json'), JSON.stringify({ name: '@huatuo/cli', version: '3.2.1-test', type: 'module' }));
  symlinkSync(join(repoRoot, 'packages/cli/node_modules'), join(installed, 'node_modules'));
  symlinkSync(join(repoRoot, 'node_modules'), join(project, 'node_modules'));
  const entry = pathToFileURL(join(installed, 'src/cli.ts')).href;
  const script = `const { main } = await import(${JSON.stringify(entry)}); await main(['node', 'huatuo-train', '--version']);`;
  const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(out, '3.2.1-test\n');
  assert.equal(buildProgram().version(), (JSON.parse(readFileSync(join(repoRoot, 'packages/cli/package.json'), 'utf8')) as { version: string }).version);
});
