// Trains the small test recipe (test/sft/trainer-setup.ts) on the data file and into the output
// folder given as arguments, printing one JSON line per optimizer step and per checkpoint; the
// resume tests kill it with SIGKILL once a checkpoint has been written.
import { initWebGPU } from '@huatuo/tensor';
import { train } from '@huatuo/sft';
import { smallConfig, smallRun } from './trainer-setup.js';

const [dataPath, outputDir] = process.argv.slice(2);
if (!dataPath || !outputDir) throw new Error('usage: resume-child.ts <data.jsonl> <output-dir>');
await initWebGPU();
const config = smallConfig(dataPath, outputDir);
const { data, model } = await smallRun(config);
await train({
  config,
  model,
  train: data.train,
  val: data.val,
  microBatchSize: 2,
  onProgress: (e) => {
    if (e.kind === 'step' || e.kind === 'save') process.stdout.write(`${JSON.stringify({ kind: e.kind, step: e.step, loss: e.loss, checkpoint: e.checkpoint })}\n`);
  },
});
