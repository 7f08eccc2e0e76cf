// `node --conditions=source --import tsx bench/variants.ts`: the matmul and decode rows of bench/run.ts
// under each variant the adapter can run, forced one after another in one process, so that a change of
// the tuned choice shows as a ratio measured in one run (a shared machine's load then affects both sides).
import { decodeCandidates, initWebGPU, matmulCandidates, matmulTuningReport, setMatmulVariant, tuneMatmul, variantName, type FloatDType } from '@huatuo/tensor';
import { benchDecode, benchMatmul, llamaDecode, squares } from './matmul.bench.js';

const info = await initWebGPU();
const choice = await tuneMatmul();
const log = (s: string) => process.stdout.write(`${s}\n`);
log(`adapter ${info.adapterName}; tuned choice ${JSON.stringify(choice)}; timed at 1/${matmulTuningReport()?.scale ?? '?'} scale`);
const dtypes: FloatDType[] = info.features.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
const general = matmulCandidates(info).filter((v) => v.kernel !== 'v1');
for (const dtype of dtypes) {
  for (const s of [...squares([1024]), { M: 256, K: 4096, N: 4096, name: '256x4096x4096' }]) {
    for (const v of general) {
      setMatmulVariant(v);
      const m = await benchMatmul(s, dtype, 3);
      setMatmulVariant(null);
      if (m) log(`matmul ${dtype} ${s.name} ${variantName(v).padEnd(20)} ${m.ms.toFixed(2).padStart(9)} ms ${((2 * s.M * s.N * s.K) / m.ms / 1e6).toFixed(1)} GFLOP/s`);
    }
  }
  for (const s of llamaDecode) {
    for (const v of decodeCandidates(info)) {
      setMatmulVariant(v);
      const m = await benchDecode(s, dtype, 3);
      setMatmulVariant(null);
      const gbps = (s.K * s.N * (dtype === 'f16' ? 2 : 4)) / m.kernelMs / 1e6;
      log(`decode ${dtype} ${s.name} ${variantName(v).padEnd(20)} ${m.kernelMs.toFixed(2).padStart(9)} ms ${gbps.toFixed(2)} GB/s (wall ${m.wallMs.toFixed(1)} ms)`);
    }
  }
}
process.exit(0);
