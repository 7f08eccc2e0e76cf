// `huatuo-train plan`: the memory of a training run from a preset alone (no weights, no GPU), with
// the figures the repository README gives for LLaMA-7B with HuaTuo's recipe; its output piped to a
// reader that stops early.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildPlanCommand } from '@huatuo/cli';

/** The lines `huatuo-train plan <args>` prints, or its error. */
async function plan(args: string[]): Promise<string[]> {
  const lines: string[] = [];
  await buildPlanCommand((line) => lines.push(line)).parseAsync(args, { from: 'user' });
  return lines;
}

const peak = (lines: string[]) => lines.find((l) => l.trimStart().startsWith('peak'))?.split(/\s+/).slice(-2).join(' ');

test("plan gives the README's planned peaks of LLaMA-7B with HuaTuo's recipe at micro-batch 4", async () => {
  const llama7b = ['--preset', 'llama-7b', '--micro-batch', '4'];
  assert.equal(peak(await plan([...llama7b, '--quantize', 'nf4'])), '4.27 GiB');
  assert.equal(peak(await plan([...llama7b, '--quantize', 'int8'])), '7.20 GiB', 'a quantized base turns checkpointing on');
  assert.equal(peak(await plan([...llama7b, '--quantize', 'int8', '--gradient-checkpointing', 'false'])), '13.47 GiB');
  assert.equal(peak(await plan([...llama7b, '--gradient-checkpointing'])), '13.23 GiB');
});

test('plan --micro-batch auto --gpu-memory plans the largest micro-batch that fits, as train picks it', async () => {
  const lines = await plan(['--preset', 'llama-7b', '--quantize', 'int8', '--gradient-checkpointing', 'false', '--micro-batch', 'auto', '--gpu-memory', '10']);
  assert.match(lines[0]!, /micro-batch 1 x 256 tokens/);
  assert.equal(peak(lines), '8.56 GiB');
  assert.match(lines.at(-1)!, /fits in --gpu-memory 10 GiB \(micro-batch 1, the largest that does\)/);
  const roomy = await plan(['--preset', 'llama-7b', '--quantize', 'nf4', '--micro-batch', 'auto', '--gpu-memory', '24']);
  assert.match(roomy[0]!, /micro-batch 16 x 256 tokens/);
});

test('plan refuses a micro-batch that does not fit --gpu-memory, naming --micro-batch after printing its figures', async () => {
  const lines: string[] = [];
  const args = ['--preset', 'llama-7b', '--quantize', 'int8', '--gradient-checkpointing', 'false', '--micro-batch', '4', '--gpu-memory', '10'];
  await assert.rejects(buildPlanCommand((line) => lines.push(line)).parseAsync(args, { from: 'user' }), /--micro-batch \(microBatchSize\): a micro-batch of 4 sequences .* use --micro-batch auto or a smaller one/);
  assert.equal(peak(lines), '13.47 GiB');
});

test('a reader that closes the output early (huatuo-train plan | head -1) ends the command with code 0 and no stack', async () => {
  const child = fileURLToPath(new URL('./cli-child.ts', import.meta.url));
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', child, 'plan', '--preset', 'tiny'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.destroy(); // closed before the command writes its first line
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  assert.equal(stderr, '');
  assert.equal(code, 0);
});
