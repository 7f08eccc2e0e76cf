// Two checkpoints of one step of a run, an old one and a new one that replaces it (a resumed run saving that step
// again), each with a real adapter of a small LLaMA; for the tests of checkpoint saves interrupted part way
// (checkpoint-replace-interrupted.test.ts, checkpoint-replace-child.ts); removals refused as a folder the user may not
// change refuses them (also checkpoint-rotate.test.ts).
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { sep } from 'node:path';
import { applyLora, configFromPreset, createRandomLlama } from '@huatuo/llama';
import { runFiles, writeCheckpoint, type SavedCheckpoint, type TrainerState } from '@huatuo/sft';
import { SMALL_MODEL } from './trainer-setup.js';

/**
 * Writes checkpoint `step` of `version` into `outputDir`, calling `beforeSave` just before: the old adapter r=4 on
 * q_proj, the new one r=8 on q_proj and v_proj, each with its own trainer state and optimizer moments. Each version is
 * the same bytes every time.
 */
export async function saveCheckpointVersion(outputDir: string, step: number, version: 'old' | 'new', beforeSave: () => void = () => {}): Promise<SavedCheckpoint> {
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 1 });
  try {
    if (version === 'old') applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj'] }, { seed: 3 });
    else applyLora(model, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] }, { seed: 4 });
    const loss = version === 'old' ? 2.5 : 1.5;
    const state: TrainerState = { step, totalSteps: 10, microBatchSize: 1, gradientAccumulation: 1, history: [{ step, loss }], bestValLoss: null, bestStep: null, recipeKey: version };
    const moments = Float32Array.from({ length: 6 }, (_, i) => i * loss);
    const optimizer = { state: [{ step, buffers: { m: moments, v: moments.map((x) => x * x) } }], paramGroups: [{ options: { lr: 0.1 }, params: [0] }] };
    beforeSave();
    return await writeCheckpoint(outputDir, step, { state, optimizer }, (dir) => runFiles.saveAdapter(model, dir, 'base'));
  } finally {
    model.dispose();
  }
}

/**
 * Makes fs/promises' rm refuse (EACCES, as a folder the user may not change) the removals under `dir` (and under
 * `dir`.removing), from the `from`-th on, until restored; with `renames`, renaming `dir` away counts and is refused too.
 * Other calls go through.
 */
export function refuseRemovals(dir: string, from = 1, { renames = false }: { renames?: boolean } = {}): { restore(): void } {
  const promises = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const [rm, rename] = [promises.rm!, promises.rename!];
  // Pruning renames a checkpoint to checkpoint-N.removing before removing it: that name is refused too.
  const under = (path: string) => [dir, `${dir}.removing`].some((d) => path === d || path.startsWith(d + sep));
  let seen = 0;
  const refused = (syscall: string, path: string) => Object.assign(new Error(`EACCES: permission denied, ${syscall} '${path}'`), { code: 'EACCES', syscall, path });
  promises.rm = (...args: unknown[]) => {
    const path = String(args[0]);
    if (under(path) && ++seen >= from) return Promise.reject(refused('rm', path));
    return rm.apply(fs.promises, args);
  };
  if (renames) {
    promises.rename = (...args: unknown[]) => {
      const path = String(args[0]);
      if (path === dir && ++seen >= from) return Promise.reject(refused('rename', path));
      return rename.apply(fs.promises, args);
    };
  }
  syncBuiltinESMExports();
  return {
    restore() {
      promises.rm = rm;
      promises.rename = rename;
      syncBuiltinESMExports();
    },
  };
}
