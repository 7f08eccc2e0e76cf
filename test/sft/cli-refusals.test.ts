// huatuo-train refusing what cannot run, before anything is allocated or trained, with the flag or
// file to fix named: --dry-run checks what the real run reads, limits of the model and adapter,
// unreadable or wrong paths; and a quiet stderr (Dawn's notices only with --verbose).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaTokenizerDir, saveMergedModel } from '@huatuo/llama';
import { join } from 'node:path';
import { SMALL_MODEL, smallRecords, tmp, writeRecords } from './trainer-setup.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const child = fileURLToPath(new URL('./cli-child.ts', import.meta.url));

let modelDir: string;
let dataPath: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', child, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A small recipe on the small model folder. */
function recipe(out: string, data = dataPath): string[] {
  return ['--base', modelDir, '--data', data, '--output-dir', out, '--cutoff-len', '64', '--val-set-size', '2', '--batch-size', '4', '--micro-batch', '2', '--lora-r', '4', '--lora-alpha', '8', '--epochs', '1'];
}

before(async () => {
  await initWebGPU();
  // The small test model with a 512-token context, as a Hugging Face folder.
  const model = createRandomLlama(configFromPreset('tiny', { ...SMALL_MODEL, maxPositionEmbeddings: 512 }), { seed: 7 });
  modelDir = join(tmp(), 'small-llama');
  await saveMergedModel(model, modelDir, { tokenizerDir: llamaTokenizerDir() });
  model.dispose();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

/** Runs the CLI through a shell with stderr sent to a file, or with both outputs into one pipe. */
function shell(args: string[], stderr: 'file' | 'pipe'): Promise<{ code: number | null; stderr: string }> {
  const quoted = ['--conditions=source', '--import', 'tsx', child, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const errFile = join(tmp(), 'stderr.txt');
  const line = stderr === 'file' ? `'${process.execPath}' ${quoted} 2>'${errFile}'` : `'${process.execPath}' ${quoted} 2>&1 | cat`;
  return new Promise((resolve) => {
    const proc = spawn('sh', ['-c', line], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('exit', (code) => resolve({ code, stderr: stderr === 'file' ? readFileSync(errFile, 'utf8') : out }));
  });
}

test("Dawn's adapter-limit notices stay off stderr (a file or a pipe) unless --verbose is given", async () => {
  for (const mode of ['file', 'pipe'] as const) {
    const quiet = await shell(['train', '--dry-run', ...recipe(join(tmp(), 'out'))], mode);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /maxDynamic/, `stderr to a ${mode}`);
  }
  const verbose = await shell(['--verbose', 'train', '--dry-run', ...recipe(join(tmp(), 'out'))], 'file');
  assert.equal(verbose.code, 0, verbose.stderr);
  // Lavapipe and most GPU drivers report limits Dawn lowers; an adapter that does not prints nothing.
  if (!/maxDynamic/.test(verbose.stderr)) return;
  assert.match(verbose.stderr, /^Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced/m);
});
