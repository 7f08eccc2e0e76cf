// The READMEs' huatuo-train command lines use flags their command has, and every other flag the
// READMEs name is one of huatuo-train's or of the few other programs they show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '@huatuo/cli';

type Command = ReturnType<typeof buildProgram>;

const root = fileURLToPath(new URL('../../', import.meta.url));
const readmes = ['README.md', ...readdirSync(`${root}packages`).map((p) => `packages/${p}/README.md`), 'apps/web/README.md'];

/** Each command by its path ("train", "sus create"), with its long flags and the root program's. */
function commandFlags(): Map<string, Set<string>> {
  const program = buildProgram();
  const global = program.options.map((o) => o.long!);
  const flags = new Map<string, Set<string>>();
  const walk = (cmd: Command, path: string) => {
    flags.set(path, new Set([...global, '--help', ...cmd.options.map((o) => o.long!)]));
    for (const sub of cmd.commands) walk(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  walk(program, '');
  return flags;
}

// Flags of the other programs the READMEs run: node, tsc, Chromium, bench/run.ts, gen-kernels.mjs,
// decode-width.bench.ts, the web app's server.
const otherPrograms = new Set(['--conditions', '--import', '--test', '--build', '--enable-unsafe-webgpu', '--quick', '--gpu-only', '--print', '--sample', '--rebuild']);

test('every huatuo-train command line in the READMEs uses flags that command has', () => {
  const flags = commandFlags();
  const wrong: string[] = [];
  let checked = 0;
  for (const readme of readmes) {
    const lines = readFileSync(`${root}${readme}`, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const m of line.matchAll(/huatuo-train((?: [a-z][a-z-]*)*)((?: [^`#]*)?)/g)) {
        const words = m[1]!.trim().split(' ').filter(Boolean);
        let path = '';
        for (const word of words) {
          const next = path ? `${path} ${word}` : word;
          if (!flags.has(next)) break;
          path = next;
        }
        const known = flags.get(path)!;
        for (const [flag] of `${m[1]}${m[2]}`.matchAll(/--[a-z][a-z0-9-]*[a-z0-9]/g)) {
          checked++;
          if (!known.has(flag)) wrong.push(`${readme}:${i + 1}: huatuo-train ${path} has no ${flag}`);
        }
      }
    });
  }
  assert.deepEqual(wrong, []);
  assert.ok(checked > 50, `only ${checked} flags found on huatuo-train command lines`);
});

test("every flag the READMEs name is one of huatuo-train's or of another program they run", () => {
  const all = new Set([...commandFlags().values()].flatMap((s) => [...s]));
  const wrong: string[] = [];
  for (const readme of readmes) {
    const lines = readFileSync(`${root}${readme}`, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const [flag] of line.matchAll(/--[a-z][a-z0-9-]*\*?/g)) {
        if (flag.endsWith('*') || flag.endsWith('-')) continue; // a family of flags: `--lora-*`
        if (!all.has(flag) && !otherPrograms.has(flag)) wrong.push(`${readme}:${i + 1}: ${flag}`);
      }
    });
  }
  assert.deepEqual(wrong, []);
});
