// Decode steps recorded once and replayed (recordStep in @huatuo/tensor): a step fed the previous
// step's picks on the GPU encodes the same dispatches every token but for the key count, so after one
// step is recorded the next ones replay it, writing only the mask, the positions and the uniform words
// that follow the key count (the attention's splits among them), instead of running every op on the
// host again. Once per generation a recording is checked against the step after it recorded as usual
// (every command, buffer and uniform word the same but those the ops declare, moved as declared); until
// then, and whenever a recording does not cover a step (a buffer it reads was released, the model's
// adapters changed, the rope table no longer covers the positions), the step runs as usual and is
// recorded again. Sampling's uniforms are an input like the mask; the penalties' seen tokens and counts
// are updated in place on the GPU. Dynamic RoPE scaling, whose tables follow the longest position, is
// not recorded: it runs as usual.

import { noGrad, recordStep, tidy, toArray, type RecordedStep, type Tensor } from '@huatuo/tensor';
import { stepForward, type Picker, type QueuedStep } from './decode-step.js';
import type { KvCache } from '../model/kv-cache.js';
import type { LlamaModel } from '../model/model.js';

let enabled = true;

/** Turns replaying recorded decode steps on or off (on by default). The tokens are the same either way. */
export function setDecodeReplay(on: boolean): void {
  enabled = on;
}

/** Whether decode steps are recorded and replayed ({@link setDecodeReplay}). */
export function decodeReplayEnabled(): boolean {
  return enabled;
}

/** Counts of the steps of one generation, for tests and benchmarks. */
export interface ReplayCounts {
  /** Steps recorded (run as usual), replayed, and run as usual without recording. */
  recorded: number;
  replayed: number;
  plain: number;
  /** Whether a recording matched the step recorded after it. */
  checked: boolean;
  /** Why replaying was given up for the generation, or null. */
  gaveUp: string | null;
}

let lastCounts: ReplayCounts | null = null;

/** The counts of the last generation that decoded with GPU picks one step ahead, or null. */
export function lastReplayCounts(): ReplayCounts | null {
  return lastCounts;
}

/**
 * What a decode step reads besides its inputs and the cache, by object: the lm_head and the norms, and
 * each layer's count of adapter changes (a projection's weights replaced free the old ones, which
 * invalidates the recording by itself).
 */
function modelState(model: LlamaModel): unknown[] {
  const head = model.lmHead;
  const out: unknown[] = [model.norm, model.training, head.quantized, head.bias, head.lora, head.merged, ...head.parts, ...model.embedParts];
  for (const layer of model.layers) out.push(layer.inputNorm, layer.postNorm, layer.adapterChanges);
  return out;
}

/** Decode steps of one generation (one cache), recorded and replayed. */
export class DecodeReplay {
  private current: RecordedStep | null = null;
  /** The model's state when `current` was recorded (see modelState). */
  private state: unknown[] = [];
  readonly counts: ReplayCounts = { recorded: 0, replayed: 0, plain: 0, checked: false, gaveUp: null };

  constructor(
    private readonly model: LlamaModel,
    private readonly cache: KvCache,
  ) {
    lastCounts = this.counts;
  }

  /**
   * Encodes a step fed `ids` (the previous picks [B] on the GPU) over S keys and starts reading its
   * picks, as queueStep does: a replay of the recorded step where it covers this one, else the step as
   * usual, recorded.
   */
  queue(ids: Tensor, mask: Int32Array, B: number, S: number, positions: number[][], pick: Picker, queuePlain: () => QueuedStep): QueuedStep {
    if (!enabled || this.counts.gaveUp !== null || this.model.config.ropeScaling?.type === 'dynamic') {
      this.counts.plain++;
      return queuePlain();
    }
    const inputs = { ...pick.inputs, ids, mask: mask.subarray(0, B * S), positions: Int32Array.from(positions.flat()) };
    const r = this.current;
    if (r !== null && this.counts.checked && this.sameModel() && r.covers(S, inputs)) {
      const picked = r.replay(S, inputs);
      this.cache.advance(1);
      this.counts.replayed++;
      return { ids: picked, read: toArray(picked) as Promise<Int32Array> };
    }
    // Once checked, the recording is not compared with the next: its buffers go back to the pool first, so
    // that the step recorded now binds the same ones (and reuses their bind groups).
    if (this.counts.checked) this.dispose();
    const V = this.model.config.vocabSize;
    const { result, recording } = recordStep(S, (input) => {
      const logits = stepForward(this.model, ids, mask, B, S, positions, this.cache, input);
      try {
        return noGrad(() => tidy(() => pick.pick(logits.reshape([B, V]), input))); // [B]
      } finally {
        logits.dispose();
      }
    });
    this.counts.recorded++;
    const queued = { ids: result, read: toArray(result) as Promise<Int32Array> };
    if (recording.refused !== null) {
      this.giveUp(`the step cannot be replayed: ${recording.refused}`);
      recording.dispose();
      return queued;
    }
    if (!this.counts.checked && r !== null && r.covers(S, inputs) && this.sameModel()) {
      if (!r.matches(recording)) {
        this.giveUp('a recorded step did not match the step after it');
        recording.dispose();
        return queued;
      }
      this.counts.checked = true;
    }
    this.dispose();
    this.current = recording;
    this.state = modelState(this.model);
    return queued;
  }

  /** Frees the recording (its buffers go back to the pool once the picks that use them are disposed). */
  dispose(): void {
    this.current?.dispose();
    this.current = null;
  }

  private giveUp(why: string): void {
    this.counts.gaveUp = why;
    this.dispose();
  }

  /** Whether the model reads the same weights and adapters as when the recording was made. */
  private sameModel(): boolean {
    const now = modelState(this.model);
    return now.length === this.state.length && now.every((v, i) => Object.is(v, this.state[i]));
  }
}
