// huatuo-train refusing what cannot run, before anything is allocated or trained, with the flag or
// file to fix named: --dry-run checks what the real run reads, limits of the model and adapter,
// unreadable or wrong paths; and a quiet stderr (Dawn's notices only with --verbose).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { deviceInfo, initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaPresets, llamaTokenizerDir, planMemory, saveMergedModel } from '@huatuo/llama';
import { checkPlanFits } from '@huatuo/sft';
import { join } from 'node:path';
import { SMALL_MODEL, smallRecords, tmp, writeRecords } from '../sft/trainer-setup.js';
import { CLI_CHILD as child, repoRoot, runCli, type ProcessRun } from './run-cli.js';


let modelDir: string;
let dataPath: string;
/** Records whose answers run to about 3,000 tokens. */
let longPath: string;

const cli = (args: string[]): Promise<ProcessRun> => runCli(args);

/** A small recipe on the small model folder. */
function recipe(out: string, data = dataPath): string[] {
  return ['--base', modelDir, '--data', data, '--output-dir', out, '--cutoff-len', '64', '--val-set-size', '2', '--batch-size', '4', '--micro-batch', '2', '--lora-r', '4', '--lora-alpha', '8', '--epochs', '1'];
}

before(async () => {
  await initWebGPU();
  // The small test model with a 4096-token context, as a Hugging Face folder.
  const model = createRandomLlama(configFromPreset('tiny', { ...SMALL_MODEL, maxPositionEmbeddings: 4096 }), { seed: 7 });
  modelDir = join(tmp(), 'small-llama');
  await saveMergedModel(model, modelDir, { tokenizerDir: llamaTokenizerDir() });
  model.dispose();
  dataPath = writeRecords(tmp(), smallRecords(12));
  longPath = writeRecords(tmp(), Array.from({ length: 12 }, (_, i) => ({ instruction: `Q${i} headache?`, input: '', output: `drink water and rest ${i} `.repeat(500) })));
});

/** The adapter's binding limit is lavapipe's 128 MiB, which the wide model's MLP activation fills at 2,048 tokens. */
function smallBindingLimit(): boolean {
  const info = deviceInfo()!;
  return Math.min(info.maxStorageBufferBindingSize, info.maxBufferSize) <= 128 * 2 ** 20;
}

test('micro-batches whose MLP activation exceeds the binding limit are not refused: the MLP runs in chunks of tokens', async (t) => {
  if (!smallBindingLimit()) return t.skip('the adapter binds more than 128 MiB; these micro-batches fit unsplit');
  // An MLP 16384 wide: [1, 2048, 16384] f32 is 128 MiB, so [2, 2048, 16384] and [1, 4096, 16384] are over.
  const wide = createRandomLlama(configFromPreset('tiny', { ...SMALL_MODEL, intermediateSize: 16384, maxPositionEmbeddings: 4096 }), { seed: 7, dtype: 'f32' });
  const wideDir = join(tmp(), 'wide-llama');
  await saveMergedModel(wide, wideDir, { tokenizerDir: llamaTokenizerDir() });
  wide.dispose();
  const long = ['--base', wideDir, '--data', longPath, '--val-set-size', '2', '--batch-size', '4', '--lora-r', '4', '--lora-alpha', '8', '--precision', 'f32'];
  for (const [cutoff, mb] of [['2048', '2'], ['4096', '1']] as const) {
    const run = await cli(['train', '--dry-run', ...long, '--output-dir', join(tmp(), 'out'), '--cutoff-len', cutoff, '--micro-batch', mb]);
    assert.equal(run.code, 0, `--cutoff-len ${cutoff} --micro-batch ${mb}: ${run.stderr}`);
  }
});

test('the logits of a long micro-batch do not limit it: the loss runs lm_head in chunks of rows', async () => {
  const long = ['--base', modelDir, '--data', longPath, '--val-set-size', '2', '--batch-size', '4', '--lora-r', '4', '--lora-alpha', '8'];
  // [4 x 2048 answer tokens, 32000] logits would be 1 GiB; the small model's activations are small.
  const run = await cli(['train', '--dry-run', ...long, '--output-dir', join(tmp(), 'out'), '--cutoff-len', '2048', '--micro-batch', '4']);
  assert.equal(run.code, 0, run.stderr);
});

test('--dry-run --resume reads the checkpoint as the real run would and refuses a truncated optimizer.safetensors', async () => {
  const out = join(tmp(), 'out');
  const first = await cli(['train', ...recipe(out), '--max-steps', '1', '--save-steps', '1', '--eval-steps', '1']);
  assert.equal(first.code, 0, first.stderr);
  const checkpoint = join(out, 'checkpoint-1');
  const ok = await cli(['train', '--dry-run', ...recipe(out), '--max-steps', '1', '--save-steps', '1', '--eval-steps', '1', '--resume', checkpoint]);
  assert.equal(ok.code, 0, ok.stderr);
  const optimizer = join(checkpoint, 'optimizer.safetensors');
  writeFileSync(optimizer, readFileSync(optimizer).subarray(0, statSync(optimizer).size - 16));
  const bad = await cli(['train', '--dry-run', ...recipe(out), '--max-steps', '1', '--save-steps', '1', '--eval-steps', '1', '--resume', checkpoint]);
  assert.equal(bad.code, 1, bad.stdout);
  assert.match(bad.stderr, /CheckpointError: .*checkpoint-1: cannot read the trainer state \(.*optimizer\.safetensors.*truncated/);
  assert.doesNotMatch(bad.stdout, /dry run: .* valid/);
});

test('--resume with no checkpoint in --output-dir is refused before the device opens, saying what to pass instead, and leaves the folder as it was', async () => {
  const empty = join(tmp(), 'out');
  const fresh = await cli(['train', ...recipe(empty), '--resume']);
  assert.equal(fresh.code, 1, fresh.stdout);
  assert.match(fresh.stderr, /CheckpointError: --resume: the --output-dir .*out holds no complete checkpoint \(checkpoint-N\) to resume from; drop --resume to start a new run there, or pass --resume <checkpoint-folder>/);
  assert.doesNotMatch(fresh.stdout, /device:|plan:/, 'nothing is opened, loaded or planned first');
  // An earlier run's adapter and metrics and an unfinished checkpoint: kept byte for byte, and --overwrite-output-dir named.
  const finished = join(tmp(), 'finished');
  mkdirSync(join(finished, 'checkpoint-7.tmp'), { recursive: true });
  writeFileSync(join(finished, 'checkpoint-7.tmp', 'adapter_model.safetensors'), 'partial');
  writeFileSync(join(finished, 'adapter_model.safetensors'), 'adapter');
  writeFileSync(join(finished, 'metrics.jsonl'), '{"step":1,"loss":2}\n');
  const before = snapshot(finished);
  const run = await cli(['train', ...recipe(finished), '--max-steps', '1', '--resume']);
  assert.equal(run.code, 1, run.stdout);
  assert.match(run.stderr, /holds no complete checkpoint .*adapter_model\.safetensors.* are left as they are.*drop --resume and start afresh with --overwrite-output-dir/);
  assert.doesNotMatch(run.stdout, /device:|plan:/);
  assert.deepEqual(snapshot(finished), before);
});

/** Every file under `dir` with its contents, by relative path. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, name);
    if (statSync(path).isFile()) files[name] = readFileSync(path).toString('base64');
  }
  return files;
}

test('a plan larger than a CPU adapter\'s memory (the host\'s) is refused naming --micro-batch, with the estimate', (t) => {
  const info = deviceInfo()!;
  if (info.memoryBytes === null) return t.skip('a GPU adapter: WebGPU reports no memory size');
  const plan = planMemory(llamaPresets['llama-7b'], { batchSize: 128, seqLen: 2048, dtype: 'f16', lora: { r: 8, targetModules: ['q_proj', 'v_proj'] }, training: true });
  assert.ok(plan.total > info.memoryBytes);
  assert.throws(() => checkPlanFits(plan), /--micro-batch \(microBatchSize\): the run needs about [\d,.]+ GiB, more than the [\d.]+ GiB this CPU adapter can use .*lower --micro-batch or --cutoff-len/);
  checkPlanFits(planMemory(configFromPreset('tiny', SMALL_MODEL), { batchSize: 2, seqLen: 64, lora: { r: 4, targetModules: ['q_proj'] }, training: true }));
});

test('--base naming a file, --resume naming a missing folder and an unwritable --output say what is wrong with the path', async () => {
  const file = await cli(['train', '--dry-run', ...recipe(join(tmp(), 'out')).map((a) => (a === modelDir ? join(modelDir, 'config.json') : a))]);
  assert.equal(file.code, 1);
  assert.match(file.stderr, /ConfigError: --base \(baseModel\): .*config\.json is a file; pass the folder that holds it/);
  const missing = await cli(['train', '--dry-run', ...recipe(join(tmp(), 'out')), '--resume', '/missing-checkpoint']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /CheckpointError: \/missing-checkpoint does not exist; pass a checkpoint folder/);
  // /sys refuses new folders (EPERM as root, EACCES otherwise).
  const denied = await cli(['generate', '--prompt', 'hi', '--max-new-tokens', '1', '--num-beams', '1', '--output', '/sys/huatuo-test/answers.jsonl']);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /^huatuo-train: cannot write \/sys\/huatuo-test: .*(EPERM|EACCES)\)$/m);
});

test('eval --base-dtype f32 loads the base in f32 and says so; other values are refused', async () => {
  const run = await cli(['eval', '--base', modelDir, '--data', dataPath, '--cutoff-len', '64', '--base-dtype', 'f32']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /12 records, loss \d+\.\d+, perplexity [\d.]+ \(base weights f32\)$/m);
  const bad = await cli(['eval', '--base', modelDir, '--data', dataPath, '--base-dtype', 'bf16']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--base-dtype: expected auto, f32 or f16, got "bf16"/);
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

test('generate takes --frequency-penalty and --presence-penalty in [-2, 2] with greedy decoding or sampling, and refuses them out of range or with beams', async () => {
  const question = ['generate', '--base', modelDir, '--prompt', '头痛怎么办？', '--max-new-tokens', '24'];
  const answer = (r: ProcessRun) => /=> (.*)$/m.exec(r.stdout)?.[1];
  const plain = await cli([...question, '--num-beams', '1']);
  const penalized = await cli([...question, '--num-beams', '1', '--frequency-penalty', '-2', '--presence-penalty', '-2']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(penalized.code, 0, penalized.stderr);
  // Negative penalties raise what was generated: the answer repeats its first token.
  assert.match(answer(penalized) ?? '', /^(.+?)\1{5,}$/u, `the answer without penalties is ${JSON.stringify(answer(plain))}`);
  assert.doesNotMatch(answer(plain) ?? '', /^(.+?)\1{5,}$/u);
  const high = await cli([...question, '--num-beams', '1', '--presence-penalty', '2.5']);
  assert.equal(high.code, 1);
  assert.match(high.stderr, /--presence-penalty: expected a number in \[-2, 2\] \(OpenAI's range\), got 2\.5/);
  const beams = await cli([...question, '--frequency-penalty', '0.5']);
  assert.equal(beams.code, 1);
  assert.match(beams.stderr, /--frequency-penalty: applies to greedy decoding and sampling, not beam search \(--num-beams 4\); add --do-sample or --num-beams 1/);
});
