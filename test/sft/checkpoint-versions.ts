// Two checkpoints of one step of a run, an old one and a new one that replaces it (a resumed run saving that step
// again), each with a real adapter of a small LLaMA; for the tests of checkpoint saves interrupted part way
// (checkpoint-replace-interrupted.test.ts, checkpoint-replace-child.ts).
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
