// The READMEs' TypeScript snippets type-check against the packages' public entries and run as
// written: each is compiled by tsc from a file of its own, and the complete ones run in a child
// process with LLaMA folders swapped for a tiny model. A new snippet is checked by default; the
// few that cannot run here are listed below with the reason. The scripts the READMEs run exist.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readmes = ['README.md', ...readdirSync(`${root}packages`).map((p) => `packages/${p}/README.md`), 'apps/web/README.md'];
const run = promisify(execFile);

interface Snippet {
  readme: string;
  /** The README line of the snippet's first code line. */
  line: number;
  code: string;
}

/** Every ```ts and ```js block of the READMEs, indentation of a list item removed. */
function readmeSnippets(): Snippet[] {
  const snippets: Snippet[] = [];
  for (const readme of readmes) {
    const lines = readFileSync(`${root}${readme}`, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^(\s*)```(ts|typescript|js|javascript)\s*$/.exec(lines[i]!);
      if (!open) continue;
      const indent = open[1]!.length;
      const end = lines.findIndex((l, j) => j > i && /^\s*```\s*$/.test(l));
      assert.ok(end > i, `${readme}:${i + 1}: code block never closed`);
      snippets.push({ readme, line: i + 2, code: lines.slice(i + 1, end).map((l) => l.slice(indent)).join('\n') });
      i = end;
    }
  }
  return snippets;
}

/**
 * Snippets that continue from the text around them: the names they use but do not make are
 * declared (on the snippet's own first line, so line numbers stay the README's). They are
 * type-checked, not run.
 */
const fragments: { readme: string; contains: string; given: string }[] = [
  {
    readme: 'packages/llama/README.md',
    contains: 'applyLora(model',
    given: "declare const model: import('@huatuo/llama').LlamaModel; declare const ids: import('@huatuo/tensor').Tensor, labels: typeof ids, attentionMask: typeof ids;",
  },
  { readme: 'packages/llama/README.md', contains: 'TorchBinFile.open(blobSource(file))', given: 'declare const file: File;' },
  {
    readme: 'packages/sus/README.md',
    contains: 'program.addCommand(buildSusCommand())',
    given: "declare const program: { addCommand(command: ReturnType<typeof import('@huatuo/sus').buildSusCommand>): unknown };",
  },
];

/** Complete snippets that type-check but do not run here, and why. */
const notRun: { readme: string; contains: string; reason: string }[] = [
  { readme: 'packages/llama/README.md', contains: "quantize: 'nf4', quantizeThreads: 8", reason: 'it only loads a model: quantized loading is tested in test/llama' },
  { readme: 'packages/sft/README.md', contains: 'runTraining({ config', reason: "HuaTuo's whole recipe on its data: hours on a GPU" },
  { readme: 'packages/sus/README.md', contains: "loadStudy('study')", reason: 'needs a study with ratings' },
];

/** What the text around a snippet says it prints, checked on its output. */
const outputs: { readme: string; contains: string; check: (stdout: string) => void }[] = [
  {
    readme: 'README.md',
    contains: 'fit y = 3x - 2 + noise with AdamW',
    check(stdout) {
      // "the loss falls from about 1.4 to 0.01"
      const losses = [...stdout.matchAll(/^step \d+: loss ([\d.]+)$/gm)].map((m) => Number(m[1]));
      assert.equal(losses.length, 10, stdout);
      assert.ok(Math.abs(losses[0]! - 1.4) < 0.1 && Math.abs(losses.at(-1)! - 0.01) < 0.002, `losses ${losses.join(', ')}`);
    },
  },
  {
    readme: 'packages/tensor/README.md',
    contains: 'console.log(await w.item()); // about 3',
    check: (stdout) => assert.ok(Math.abs(Number(stdout) - 3) < 0.01, `printed ${stdout}`),
  },
  {
    readme: 'packages/cli/README.md',
    contains: "'plan', '--preset', 'llama-7b'",
    check: (stdout) => assert.match(stdout, /^llama-7b: 32 layers, hidden 4096, nf4 base[^]*\n {2}peak +\d/),
  },
];

/** The LLaMA folder and data file snippets name, replaced by the tiny model's folder. */
const modelFolder = 'models/llama-7b-hf';

function entryFor<T extends { readme: string; contains: string }>(entries: T[], s: Snippet): T | undefined {
  return entries.find((e) => e.readme === s.readme && s.code.includes(e.contains));
}

const where = (s: Snippet) => `${s.readme}:${s.line}`;

let work: string;
let model: string;
before(() => {
  mkdirSync(`${root}tmp`, { recursive: true });
  work = mkdtempSync(`${root}tmp/readme-snippets-`);
  // The vocab32k fixture (1 layer, 16 wide, LLaMA's vocabulary) with LLaMA's tokenizer, its context
  // raised from the fixture's 64 positions so that generate's default 128 new tokens fit.
  model = join(work, 'model');
  mkdirSync(model);
  const fixture = `${root}test/fixtures/llama/vocab32k`;
  for (const f of readdirSync(fixture)) if (f.endsWith('.safetensors') || f.endsWith('.index.json')) copyFileSync(join(fixture, f), join(model, f));
  const config = JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8'));
  writeFileSync(join(model, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 2048 }));
  const tokenizer = `${root}packages/llama/assets/llama-tokenizer`;
  for (const f of ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(tokenizer, f), join(model, f));
});
after(() => rmSync(work, { recursive: true, force: true }));

test('every entry of the lists above names one README snippet', () => {
  const snippets = readmeSnippets();
  assert.ok(snippets.length >= 10, `only ${snippets.length} snippets found`);
  for (const entry of [...fragments, ...notRun, ...outputs]) {
    const matches = snippets.filter((s) => s.readme === entry.readme && s.code.includes(entry.contains));
    assert.equal(matches.length, 1, `${entry.readme}: ${matches.length} snippets contain ${JSON.stringify(entry.contains)}`);
  }
});

test("every README snippet type-checks against the packages' public entries", async () => {
  const snippets = readmeSnippets();
  const dir = join(work, 'typecheck');
  mkdirSync(dir);
  const files = new Map<string, Snippet>();
  snippets.forEach((s, i) => {
    const name = `snippet-${i}.ts`;
    files.set(name, s);
    writeFileSync(join(dir, name), `${entryFor(fragments, s)?.given ?? ''}${s.code}\nexport {};\n`);
  });
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: `${root}tsconfig.base.json`,
      compilerOptions: { composite: false, declaration: false, sourceMap: false, noEmit: true },
      include: ['*.ts'],
    }),
  );
  const tsc = `${root}node_modules/typescript/bin/tsc`;
  const result = await run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir }).then(
    () => '',
    (e: { stdout?: string; message: string }) => e.stdout || e.message,
  );
  // Each error at its README line: "README.md:178:13: error TS2304: Cannot find name 'model'."
  const errors = result.replace(/^(snippet-\d+\.ts)\((\d+),(\d+)\)/gm, (all, name: string, line: string, col: string) => {
    const s = files.get(name);
    if (!s) return all;
    const given = line === '1' ? (entryFor(fragments, s)?.given.length ?? 0) : 0;
    return `${s.readme}:${s.line + Number(line) - 1}:${Number(col) - given}`;
  });
  assert.equal(errors, '', `README snippets that do not type-check (a fragment's givens are listed in ${fileURLToPath(import.meta.url)}):\n${errors}`);
});

test("README snippets import only the packages' public entries and Node's modules", () => {
  const wrong: string[] = [];
  for (const s of readmeSnippets()) {
    for (const [, from] of s.code.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      if (!/^(@huatuo\/[a-z]+|node:[a-z/_]+)$/.test(from!)) wrong.push(`${where(s)}: ${from}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the tensor library section is examples/regression.ts', () => {
  const snippet = readmeSnippets().find((s) => s.readme === 'README.md' && s.code.includes('fit y = 3x - 2'));
  const example = readFileSync(`${root}examples/regression.ts`, 'utf8').replace(/^\/\/ Run: .*\n/m, '');
  assert.equal(`${snippet?.code}\n`, example);
});

for (const snippet of readmeSnippets()) {
  if (entryFor(fragments, snippet) || entryFor(notRun, snippet)) continue;
  test(`${where(snippet)} runs as written and prints what its text says`, async () => {
    const dir = mkdtempSync(join(work, 'run-'));
    writeFileSync(join(dir, 'snippet.ts'), `${snippet.code.replaceAll(modelFolder, model)}\nexport {};\n`);
    const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', HUATUO_MATMUL_TUNE: '0' };
    const { stdout } = await run(process.execPath, ['--conditions=source', '--import', 'tsx', 'snippet.ts'], { cwd: dir, env, timeout: 60_000 });
    entryFor(outputs, snippet)?.check(stdout.trim());
  });
}

test('the scripts and npm commands the READMEs run exist', () => {
  const scripts = JSON.parse(readFileSync(`${root}package.json`, 'utf8')).scripts as Record<string, string>;
  const missing: string[] = [];
  let checked = 0;
  for (const readme of readmes) {
    readFileSync(`${root}${readme}`, 'utf8').split('\n').forEach((line, i) => {
      const at = `${readme}:${i + 1}`;
      for (const m of line.matchAll(/\b(?:node|bash|python3)(?:\s+--?[\w=-]+(?:\s+tsx)?)*\s+([\w./-]+\.(?:mjs|js|ts|sh|py))/g)) {
        checked++;
        if (!existsSync(`${root}${m[1]}`)) missing.push(`${at}: ${m[1]}`);
      }
      for (const m of line.matchAll(/\bnpm run ([\w:-]+)/g)) {
        checked++;
        if (!(m[1]! in scripts)) missing.push(`${at}: npm run ${m[1]} (package.json has no such script)`);
      }
      for (const m of line.matchAll(/\bnpm test -- ([\w./-]+)/g)) {
        checked++;
        if (!existsSync(`${root}${m[1]}`)) missing.push(`${at}: npm test -- ${m[1]}`);
      }
    });
  }
  assert.deepEqual(missing, []);
  assert.ok(checked >= 10, `only ${checked} commands found`);
});
