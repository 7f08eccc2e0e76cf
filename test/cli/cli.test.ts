// huatuo-train as a user runs it (a child process per command): every flag documented in --help,
// --dry-run's plan, bad input refused before training with the file and record or tensor named,
// Ctrl-C saving a checkpoint, and generate / eval / merge on a small model folder.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasF16, initWebGPU, tensor } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, llamaTokenizerDir, loadAdapter, loadLlama, saveAdapter, saveMergedModel, setAdapterWeights, adaptedLinears, peftKey } from '@huatuo/llama';
import { buildProgram } from '@huatuo/cli';
import { listCheckpoints, loadRecords, readCheckpoint } from '@huatuo/sft';
import { SMALL_MODEL, smallRecords, tmp, writeRecords } from '../sft/trainer-setup.js';
import { repoRoot, runCli, type ProcessRun } from './run-cli.js';

const inferFile = join(repoRoot, '../shared/data/huatuo/infer.json');
const otherAdapter = fileURLToPath(new URL('../fixtures/llama/vocab32k/adapter', import.meta.url));

let modelDir: string;
let adapterDir: string;
let dataPath: string;

function cli(args: string[], options: { onStdout?: (text: string, proc: ChildProcess) => void } = {}): Promise<ProcessRun> {
  return runCli(args, options.onStdout);
}

/** The small recipe's flags (see trainer-setup.ts) for a data file and an output folder. */
function recipe(data: string, out: string): string[] {
  return ['--base', modelDir, '--data', data, '--output-dir', out, '--cutoff-len', '64', '--val-set-size', '2', '--batch-size', '4', '--micro-batch', '2', '--lora-r', '4', '--lora-alpha', '8', '--logging-steps', '1', '--eval-steps', '5', '--save-steps', '5', '--epochs', '10'];
}

/** `args` less the given flags and their values. */
function withoutFlags(args: string[], flags: string[]): string[] {
  return args.filter((a, i) => !flags.includes(a) && !flags.includes(args[i - 1] ?? ''));
}

before(async () => {
  await initWebGPU();
  // A Hugging Face folder of the small test model, with LLaMA's tokenizer files.
  const config = configFromPreset('tiny', SMALL_MODEL);
  const model = createRandomLlama(config, { seed: 7 });
  modelDir = join(tmp(), 'small-llama');
  await saveMergedModel(model, modelDir, { tokenizerDir: llamaTokenizerDir() });
  // An adapter for it with non-zero B, so merging and loading change the outputs.
  applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: 3 });
  const weights = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const { layer, target, linear } of adaptedLinears(model)) {
    const A = linear.lora!.A;
    const B = linear.lora!.B;
    weights.set(peftKey(layer, target, 'A'), { shape: A.shape, data: (await A.toArray()) as Float32Array });
    weights.set(peftKey(layer, target, 'B'), { shape: B.shape, data: Float32Array.from({ length: B.size }, (_, i) => Math.sin(i + 1) * 0.05) });
  }
  setAdapterWeights(model, weights, 'test adapter');
  adapterDir = join(tmp(), 'adapter');
  await saveAdapter(model, adapterDir, modelDir);
  model.dispose();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

test('--help of train, generate, merge and eval documents every flag the command registers', () => {
  const program = buildProgram();
  for (const name of ['train', 'generate', 'merge', 'eval']) {
    const cmd = program.commands.find((c) => c.name() === name);
    assert.ok(cmd, `command ${name} exists`);
    const help = cmd.helpInformation();
    assert.ok(cmd.options.length > 0);
    for (const o of cmd.options) {
      assert.ok(o.long && help.includes(o.long), `${name} --help shows ${o.long}`);
      assert.ok(o.description.trim().length > 0, `${name} ${o.long} has a description`);
    }
  }
});

test('train --dry-run prints records, tokens, steps and a memory estimate, and trains nothing', async () => {
  const out = join(tmp(), 'out');
  const r = await cli(['train', ...recipe(dataPath, out), '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /10 training and 2 validation records, \d+ training tokens/);
  assert.match(r.stdout, /30 optimizer steps \(3 per epoch x 10 epochs\), batch 4 = micro-batch 2 x 2 accumulation/);
  assert.match(r.stdout, /memory: weights .*peak/);
  assert.match(r.stdout, /dry run/);
  assert.ok(!existsSync(out) || readdirSync(out).length === 0, 'nothing written by a dry run');
});

test('train --init-adapter trains the adapter as it is: the plan shows its own r, alpha and dropout, and a flag contradicting them is refused', async () => {
  const out = join(tmp(), 'out');
  const plan = await cli(['train', ...recipe(dataPath, out), '--init-adapter', adapterDir, '--max-steps', '7', '--dry-run']);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /LoRA r 4, alpha 8, dropout 0 on q_proj, v_proj \(the --init-adapter's own, from /, 'dropout 0 is the adapter\'s, not the default 0.05');
  assert.match(plan.stdout, /7 optimizer steps \(--max-steps 7, 3 per epoch: 2\.33 epochs\)/);
  for (const [flag, key, value, own] of [['--lora-r', 'loraR', '16', 'r is 4'], ['--lora-dropout', 'loraDropout', '0.1', 'lora_dropout is 0']] as const) {
    const r = await cli(['train', ...recipe(dataPath, out), '--init-adapter', adapterDir, flag, value, '--dry-run']);
    assert.equal(r.code, 1, `${flag} ${value} is refused (stdout: ${r.stdout})`);
    assert.match(r.stderr, new RegExp(`${flag} \\(${key}\\): ${value} contradicts the --init-adapter, whose ${own} \\(.*adapter_config\\.json\\); drop ${flag}`));
  }
});

test('bad input stops train before any step with exit code 1 and a message naming the file and the record or tensor', async () => {
  const dir = tmp();
  const notJson = join(dir, 'notjson.json');
  writeFileSync(notJson, 'this is not json {');
  const missing = writeRecords(dir, [...smallRecords(4), { instruction: 'Q?', input: '' }], 'missing.jsonl');
  const empty = writeRecords(dir, [...smallRecords(4), { instruction: 'Q?', input: '', output: '' }], 'empty.jsonl');
  const brokenBase = join(dir, 'broken-base');
  mkdirSync(brokenBase);
  copyFileSync(join(modelDir, 'config.json'), join(brokenBase, 'config.json'));
  for (const f of ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json']) if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(brokenBase, f));
  const cases: { what: string; args: string[]; expect: RegExp[] }[] = [
    { what: 'a data file that is not JSON', args: recipe(notJson, join(dir, 'o1')), expect: [/notjson\.json/] },
    { what: 'a record without output', args: recipe(missing, join(dir, 'o2')), expect: [/missing\.jsonl/, /line 5|record 5/, /output/] },
    { what: 'a record with an empty output', args: recipe(empty, join(dir, 'o3')), expect: [/empty\.jsonl/, /line 5|record 5/, /output/] },
    { what: 'a base folder without weights', args: [...recipe(dataPath, join(dir, 'o4')), '--base', brokenBase], expect: [/broken-base/, /safetensors/] },
    { what: 'an adapter of another model', args: [...withoutFlags(recipe(dataPath, join(dir, 'o5')), ['--lora-r', '--lora-alpha']), '--init-adapter', otherAdapter], expect: [/adapter_model\.safetensors/, /lora_[AB]/, /shape/] },
  ];
  for (const c of cases) {
    const r = await cli(['train', ...c.args]);
    assert.equal(r.code, 1, `${c.what}: exit code 1 (stderr: ${r.stderr})`);
    for (const e of c.expect) assert.match(r.stderr, e, `${c.what}: the message matches ${e}`);
    assert.doesNotMatch(r.stdout, /^step \d+/m, `${c.what}: no training step ran`);
    assert.ok(!/at .*\(.*\.ts:\d+/.test(r.stderr), `${c.what}: no stack trace`);
  }
});

test('train without --data stops before opening the device, naming --data and the command that runs the demonstration', async () => {
  const r = await cli(['train']);
  assert.equal(r.code, 1, `exit code 1 (stderr: ${r.stderr})`);
  assert.match(r.stderr, /--data \(dataPath\): train needs a data file/);
  assert.match(r.stderr, /huatuo-train with no command/);
  assert.doesNotMatch(r.stderr, /validation records/);
  assert.doesNotMatch(r.stdout, /^device:/m, 'no device was opened');
});

test('train into a folder holding another run is refused naming --resume and --overwrite-output-dir; with the flag the old run is removed first', async () => {
  const out = join(tmp(), 'out');
  // The sample answer after training may fail for memory on lavapipe; the run's files are written before it.
  const first = await cli(['train', ...recipe(dataPath, out), '--epochs', '3']);
  assert.match(first.stdout, /wrote .*adapter_model\.safetensors/, first.stderr);
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [5, 9], '3 epochs of 3 steps: checkpoints every 5 and at the end');
  const adapter = readFileSync(join(out, 'adapter_model.safetensors'));
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8');

  const refused = await cli(['train', ...recipe(dataPath, out), '--epochs', '1']);
  assert.equal(refused.code, 1, `refused (stdout: ${refused.stdout})`);
  assert.match(refused.stderr, /--output-dir \(outputDir\): .*already holds a training run/);
  assert.match(refused.stderr, /--resume/);
  assert.match(refused.stderr, /--overwrite-output-dir/);
  assert.doesNotMatch(refused.stdout, /^step \d+/m, 'no step ran');
  assert.deepEqual(readFileSync(join(out, 'adapter_model.safetensors')), adapter, 'the earlier adapter is untouched');
  assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8'), metrics, 'the earlier metrics are untouched');

  // A 3-step run (2 steps and the epoch's leftover micro-batch) keeping one recent checkpoint: the earlier run's checkpoint-9 must not count as the newest.
  const replaced = await cli(['train', ...recipe(dataPath, out), '--epochs', '1', '--eval-steps', '1', '--save-steps', '1', '--save-total-limit', '1', '--overwrite-output-dir']);
  assert.match(replaced.stdout, /wrote .*adapter_model\.safetensors/, replaced.stderr);
  assert.match(replaced.stdout, /holds an earlier run .*removing it before the first step/);
  const kept = (await listCheckpoints(out)).map((c) => c.step);
  const { best_model_checkpoint: best } = JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as { best_model_checkpoint: string };
  assert.deepEqual(kept.map((s) => join(out, `checkpoint-${s}`)), [best], `only the new run's best checkpoint, which a finished run keeps with --save-total-limit 1: ${kept.join(', ')}`);
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { step: number });
  assert.deepEqual(rows.map((r) => r.step), [1, 1, 2, 2, 3, 3], 'metrics.jsonl holds the new run only');
});

test('Ctrl-C during train saves a checkpoint, prints how to resume from it and exits with code 130', async () => {
  const out = join(tmp(), 'out');
  let sent = false;
  const r = await cli(['train', ...recipe(dataPath, out)], {
    onStdout: (text, proc) => {
      if (!sent && /^step \d+\/30/m.test(text)) {
        sent = true;
        proc.kill('SIGINT');
      }
    },
  });
  assert.ok(sent, `a step was logged: ${r.stdout}`);
  assert.equal(r.code, 130, `exit code 130 (stderr: ${r.stderr})`);
  const hint = /stopped at step (\d+); resume with: huatuo-train train --resume (\S+)/.exec(r.stdout);
  assert.ok(hint, `a resume hint: ${r.stdout}`);
  const saved = await readCheckpoint(hint[2]!);
  assert.equal(saved.state.step, Number(hint[1]));
  assert.ok(saved.state.step < 20, 'stopped before the end');
});

test('generate --input infer.json --output writes one JSONL {question, answer} per question, the answer cut after the response marker', async () => {
  const outFile = join(tmp(), 'answers.jsonl');
  const r = await cli(['generate', '--base', modelDir, '--adapter', adapterDir, '--input', inferFile, '--output', outFile, '--num-beams', '1', '--max-new-tokens', '4']);
  assert.equal(r.code, 0, r.stderr);
  const questions = (await loadRecords(inferFile)).records.map((q) => q.instruction);
  const lines = readFileSync(outFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { question: string; answer: string });
  assert.deepEqual(lines.map((l) => l.question), questions);
  for (const l of lines) {
    assert.deepEqual(Object.keys(l).sort(), ['answer', 'question']);
    assert.equal(typeof l.answer, 'string');
    assert.ok(!l.answer.includes('### 回答:') && !l.answer.includes(l.question), `the answer holds no prompt: ${JSON.stringify(l.answer)}`);
  }
});

test('generate --output leaves an existing file as it was when generation fails part-way, and --append adds to it', async () => {
  const dir = tmp();
  const outFile = join(dir, 'answers.jsonl');
  writeFileSync(outFile, '{"question":"kept","answer":"from an earlier run"}\n');
  // The second question is longer than the model's 512 positions: generation fails after the first answer.
  const questions = writeRecords(dir, [{ instruction: '头痛怎么办？', input: '', output: '-' }, { instruction: '头痛'.repeat(400), input: '', output: '-' }], 'questions.jsonl');
  const failed = await cli(['generate', '--base', modelDir, '--input', questions, '--output', outFile, '--num-beams', '1', '--max-new-tokens', '2']);
  assert.equal(failed.code, 1, `the long question fails (stdout: ${failed.stdout})`);
  assert.match(failed.stderr, /max_position_embeddings/);
  assert.equal(readFileSync(outFile, 'utf8'), '{"question":"kept","answer":"from an earlier run"}\n', 'the earlier file is intact');
  assert.deepEqual(readdirSync(dir).sort(), ['answers.jsonl', 'questions.jsonl'], 'no temp file is left');
  const appended = await cli(['generate', '--base', modelDir, '--prompt', '头痛怎么办？', '--output', outFile, '--append', '--num-beams', '1', '--max-new-tokens', '2']);
  assert.equal(appended.code, 0, appended.stderr);
  const lines = readFileSync(outFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { question: string });
  assert.deepEqual(lines.map((l) => l.question), ['kept', '头痛怎么办？']);
  const noOutput = await cli(['generate', '--base', modelDir, '--prompt', 'x', '--append']);
  assert.equal(noOutput.code, 1);
  assert.match(noOutput.stderr, /--append.*--output/);
});

test('eval prints the validation loss and its perplexity, exp(loss)', async () => {
  const r = await cli(['eval', '--base', modelDir, '--adapter', adapterDir, '--data', dataPath, '--cutoff-len', '64']);
  assert.equal(r.code, 0, r.stderr);
  const m = /12 records, loss (\d+\.\d+), perplexity (\d+(?:\.\d+)?)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const loss = Number(m[1]);
  assert.ok(loss > 0 && loss < 20);
  assert.ok(Math.abs(Number(m[2]) - Math.exp(loss)) <= Math.exp(loss) * 1e-3, `perplexity ${m[2]} is exp(${loss})`);
});

test('merge writes a Hugging Face folder that loadLlama reads and that computes what the base with the adapter computes', async () => {
  const out = join(tmp(), 'merged');
  const r = await cli(['merge', '--base', modelDir, '--adapter', adapterDir, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const merged = await loadLlama(out);
  const adapted = await loadLlama(modelDir);
  const plain = await loadLlama(modelDir);
  try {
    await loadAdapter(adapted, adapterDir);
    const ids = tensor(new Int32Array([1, 450, 2060, 338, 263]), [1, 5]);
    const a = (await merged.forward(ids).toArray()) as Float32Array;
    const b = (await adapted.forward(ids).toArray()) as Float32Array;
    const c = (await plain.forward(ids).toArray()) as Float32Array;
    let diff = 0;
    let changed = 0;
    let largest = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      changed = Math.max(changed, Math.abs(b[i]! - c[i]!));
      largest = Math.max(largest, Math.abs(b[i]!));
    }
    // Where the adapter has shader-f16 the CLI loads the base in f16 and writes f16 weights (as
    // HuaTuo's export does), so the merged logits carry f16 rounding: 2^-11 relative per weight.
    const tolerance = largest * (hasF16() ? 4e-3 : 1e-5);
    assert.ok(changed > 10 * tolerance, `the adapter changes the outputs (${changed}) by far more than the tolerance ${tolerance}`);
    assert.ok(diff <= tolerance, `merged and adapted logits agree: largest difference ${diff}, tolerance ${tolerance}`);
  } finally {
    merged.dispose();
    adapted.dispose();
    plain.dispose();
  }
});

test('merge refuses an --out that is the base folder or inside it, and one holding a model unless --overwrite', async () => {
  const before = readFileSync(join(modelDir, 'model.safetensors'));
  const configBefore = readFileSync(join(modelDir, 'config.json'), 'utf8');
  for (const out of [modelDir, join(modelDir, 'merged')]) {
    const r = await cli(['merge', '--base', modelDir, '--adapter', adapterDir, '--out', out, '--overwrite']);
    assert.equal(r.code, 1, `--out ${out} is refused (stdout: ${r.stdout})`);
    assert.match(r.stderr, /--out: .*(the --base folder|inside the --base folder)/);
  }
  assert.deepEqual(readFileSync(join(modelDir, 'model.safetensors')), before, 'the base weights are untouched');
  assert.equal(readFileSync(join(modelDir, 'config.json'), 'utf8'), configBefore);
  assert.ok(!existsSync(join(modelDir, 'merged')));

  const taken = join(tmp(), 'taken');
  mkdirSync(taken);
  writeFileSync(join(taken, 'config.json'), '{"kept": true}');
  const refused = await cli(['merge', '--base', modelDir, '--adapter', adapterDir, '--out', taken]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /--out: .*taken already holds a model \(config\.json\); pass --overwrite/);
  assert.equal(readFileSync(join(taken, 'config.json'), 'utf8'), '{"kept": true}');
  const replaced = await cli(['merge', '--base', modelDir, '--adapter', adapterDir, '--out', taken, '--overwrite']);
  assert.equal(replaced.code, 0, replaced.stderr);
  (await loadLlama(taken)).dispose();
});
