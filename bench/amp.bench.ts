// Mixed precision against f32 for the LLaMA training steps of bench/train.bench.ts, timed in one benny
// suite per model so the ratio is measured under the same load:
// `node --conditions=source --import tsx bench/amp.bench.ts [--quick]`.
import { initWebGPU } from '@huatuo/tensor';
import { benchSuite } from './timing.js';
import { benchPrecisions, trainConfigs, trainStep } from './train.bench.js';

const quick = process.argv.includes('--quick');
const info = await initWebGPU();
process.stdout.write(`adapter: ${info.adapterName}\n`);
if (benchPrecisions().length < 2) {
  process.stdout.write('the adapter lacks shader-f16: only f32 training runs here, nothing to compare\n');
} else {
  for (const tc of trainConfigs(quick)) {
    const f32 = trainStep(tc, 'f32');
    const mixed = trainStep(tc, 'mixed');
    // One chain for both cases: a step's scope must end before the other case's step begins.
    let chain: Promise<unknown> = Promise.resolve();
    const serial = (fn: () => Promise<number>) => () => (chain = chain.then(fn, fn));
    const t = await benchSuite(`train step ${tc.name}`, [['f32', serial(f32.step)], ['mixed', serial(mixed.step)]], tc.params > 5e7 ? 3 : 5);
    const [a, b] = [t.get('f32')!.ms, t.get('mixed')!.ms];
    process.stdout.write(`${tc.name} B1 T${tc.seq}: f32 ${a.toFixed(1)} ms, mixed ${b.toFixed(1)} ms; mixed/f32 time ${(b / a).toFixed(2)}x${tc.note ? ` (${tc.note})` : ''}\n`);
    f32.dispose();
    mixed.dispose();
  }
}
