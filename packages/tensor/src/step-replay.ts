// A step of tensor ops recorded once and replayed without running the ops again (backend/replay.ts):
// decoding's model step, the same dispatches every token but for the key count and the new inputs.
import { getRuntime } from './backend/context.js';
import type { StepRecording } from './backend/replay.js';
import { ValueError } from './errors.js';
import { Storage, Tensor, type DType } from './tensor.js';

/** Marks a tensor as an input of the recorded step, by name: host data it uploads, or a GPU tensor it reads. */
export type MarkInput = <T extends Tensor>(name: string, t: T) => T;

/** What a replay is given for each input named when recording: host data, or a GPU tensor. */
export type ReplayInputs = Readonly<Record<string, ArrayBufferView | Tensor>>;

/**
 * A step recorded by {@link recordStep}: replayable at other key counts while {@link covers} says so.
 * Holds the buffers the step created until {@link dispose}.
 */
export class RecordedStep {
  private disposed = false;

  constructor(
    private readonly recording: StepRecording,
    private readonly shape: readonly number[],
    private readonly dtype: DType,
    private readonly bytes: number,
  ) {}

  /** The key count it was recorded at. */
  get length(): number {
    return this.recording.length;
  }

  /** Why it cannot be replayed at all (an op it ran cannot be repeated), or null. */
  get refused(): string | null {
    return this.recording.refused;
  }

  /**
   * Whether a replay at `length` keys with these inputs encodes what running the step would: not
   * disposed, no buffer it reads released, `length` within every op's range, host inputs within their
   * buffers and bounds, no profiler timing the dispatches.
   */
  covers(length: number, inputs: ReplayInputs): boolean {
    // The profiler times each dispatch on its own: a replay would hide them.
    if (this.disposed || !this.recording.covers(length) || getRuntime().passHook !== null) return false;
    return this.recording.accepts(this.recording.inputs.map((i) => (i.kind === 'host' ? hostData(inputs[i.name]) : null)));
  }

  /** Runs the recorded commands again at `length` keys with new inputs; the result as the step returned it. */
  replay(length: number, inputs: ReplayInputs): Tensor {
    if (!this.covers(length, inputs)) throw new ValueError(`internal: the recorded step does not cover ${length} keys and these inputs; record it again`);
    const host: (ArrayBufferView | null)[] = [];
    const sources: (GPUBuffer | null)[] = [];
    for (const input of this.recording.inputs) {
      const value = inputs[input.name];
      if (input.kind === 'host') {
        host.push(hostData(value));
        sources.push(null);
        continue;
      }
      if (!(value instanceof Tensor) || value.offset !== 0 || !value.isContiguous || value.storage('replay').bytes !== input.bytes) {
        throw new ValueError(`internal: replay input ${input.name} should be a contiguous tensor of ${input.bytes} bytes, as recorded`);
      }
      host.push(null);
      sources.push(value.buffer('replay'));
    }
    const rt = getRuntime();
    rt.replay(this.recording, length, host, sources);
    const output = this.recording.outputBuffer!;
    rt.retainHeld(output);
    return new Tensor(new Storage(output, this.bytes), this.shape, this.dtype);
  }

  /**
   * Whether `later`, the same step recorded at another key count, is this one replayed there (the
   * same commands and buffers, the declared words moved): a check that the ops declare all that moves.
   */
  matches(later: RecordedStep): boolean {
    return !this.disposed && !later.disposed && this.recording.matches(later.recording);
  }

  /** Frees the recording; its buffers go back to the pool once no tensor holds them. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    getRuntime().disposeRecording(this.recording);
  }
}

function hostData(value: ArrayBufferView | Tensor | undefined): ArrayBufferView | null {
  return value === undefined || value instanceof Tensor ? null : value;
}

/**
 * Runs `step` as usual and records the GPU work it encodes, for {@link RecordedStep.replay} at other
 * key counts (`length`: this step's). `step` marks its inputs with `input`: tensors it creates from
 * host data, and GPU tensors made before it. The result must be a tensor the step creates. A step
 * that does what a replay cannot repeat (host data that is not an input, a readback) is recorded as
 * refused ({@link RecordedStep.refused}); its result is correct either way.
 * @example
 * const { result, recording } = recordStep(S, (input) => model.forward(input('ids', ids), { ... }));
 * const next = recording.replay(S + 1, { ids: result });
 */
export function recordStep(length: number, step: (input: MarkInput) => Tensor): { result: Tensor; recording: RecordedStep } {
  const rt = getRuntime();
  const recording = rt.beginRecording(length);
  let result: Tensor;
  try {
    result = step((name, t) => {
      recording.input(name, recording.owned.has(t.buffer(name)) ? 'host' : 'gpu', t.buffer(name), t.storage(name).bytes);
      if (t.offset !== 0 || !t.isContiguous) recording.refuse(`input ${name} is a view`);
      return t;
    });
  } catch (e) {
    rt.disposeRecording(recording);
    throw e;
  }
  if (result.offset !== 0 || !result.isContiguous) recording.refuse('its result is a view');
  rt.endRecording(result.buffer('recordStep'));
  return { result, recording: new RecordedStep(recording, result.shape, result.dtype, result.storage('recordStep').bytes) };
}
