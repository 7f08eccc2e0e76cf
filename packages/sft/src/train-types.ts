// The trainer's contract: what it needs from a model (loss, LoRA parameters, adapter files), the
// device batches it feeds it, its options, its progress events and its result.
import type { FloatDType, GradScalerOptions, Tensor } from '@huatuo/tensor';
import type { TokenizedExample } from './batch.js';
import type { TrainerState } from './checkpoint.js';
import type { TrainConfig } from './config.js';

/** A padded micro-batch on the device. */
export interface DeviceBatch {
  /** [B, T] i32 token ids. */
  inputIds: Tensor;
  /** [B, T] i32 targets, -100 where no loss is taken. */
  labels: Tensor;
  /** [B, T] i32, 1 on tokens and 0 on padding. */
  attentionMask: Tensor;
  /** Non-padding tokens in the batch. */
  tokens: number;
}

/** What the trainer needs from a model with LoRA adapters. */
export interface TrainableModel {
  /** Mean cross-entropy over the labels that are not -100 (logits shifted as a causal LM's). */
  loss(batch: DeviceBatch, options: { training: boolean; dropoutSeed: number }): Tensor;
  /** The trainable (LoRA) parameters, by PEFT key. */
  readonly trainableParameters: ReadonlyMap<string, Tensor>;
  /** Writes `adapter_config.json` and `adapter_model.safetensors` into `dir`. */
  saveAdapter(dir: string): Promise<void>;
  /** Loads a PEFT adapter folder's weights into the trainable parameters. */
  loadAdapter(dir: string): Promise<void>;
  /** The dtype its activations compute in (default f32): f16 trains with loss scaling. */
  readonly dtype?: FloatDType;
  /**
   * The head dim of its attention, if it uses `attention`: the trainer has those kernels created for it
   * and its dtype (readyAttention) before the first step, so that every step runs the same ones.
   */
  readonly headDim?: number;
  /**
   * The parameters transformers' `num_parameters(exclude_embeddings=True)` counts on the PEFT model, which the
   * Trainer's total_flos multiplies by 6 x input_ids.numel() per micro-batch; without it total_flos stays 0, as
   * the Trainer's does for a model without floating_point_ops.
   */
  readonly nonEmbeddingParameters?: number;
}

/** A progress event, for a progress bar or log lines. */
export interface ProgressEvent {
  /** 'resume': the run continues from `checkpoint`, whose step is `step`. */
  kind: 'resume' | 'step' | 'log' | 'eval' | 'save' | 'done';
  step: number;
  totalSteps: number;
  /** On 'step': the step's training loss; on 'log': the mean of the step losses since the previous 'log' (the Trainer's logged loss). */
  loss?: number;
  valLoss?: number;
  /**
   * On 'step': the step's learning rate, the schedule's at the optimizer steps taken before it
   * (TrainerState.lrSchedulerSteps); a step skipped for inf/NaN gradients takes none, so the next one has its rate.
   * On 'log': the rate the log records, the logged step's (transformers 4.57), or with --epoch-remainder carry
   * the scheduler's after it stepped for the logged step, the next step's (transformers 4.28).
   */
  lr?: number;
  tokensPerSec?: number;
  elapsedSec: number;
  checkpoint?: string;
  /**
   * On 'save' and 'resume': leftovers of checkpoint saves, and old checkpoints that --save-total-limit removes, that
   * could not be removed, each naming its folder and what to do; the run goes on (the checkpoints kept are complete).
   * On 'done': why the best model was not loaded, or was loaded from an earlier best than the best evaluated step.
   */
  warnings?: string[];
  /** On 'step' events of a loss-scaled (mixed precision) run: the scale this step's loss was multiplied by. */
  lossScale?: number;
  /** On 'step' events: true when the gradients held inf/NaN and the optimizer step was skipped (mixed precision). */
  skipped?: boolean;
}

/** Options of {@link train}. */
export interface TrainOptions {
  config: TrainConfig;
  model: TrainableModel;
  train: readonly TokenizedExample[];
  val: readonly TokenizedExample[];
  /** Examples per forward pass (the gradient accumulation makes up config.batchSize). */
  microBatchSize: number;
  /** A checkpoint folder to resume from, or 'latest' for the newest in the output folder. */
  resume?: string | null;
  /** Aborting saves a checkpoint at the end of the current step and stops. */
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Stop after this many optimizer steps in total (for tests and short runs); the schedule is unchanged. */
  stopAfterStep?: number;
  /**
   * Start afresh in an output folder that holds another run: its adapter, metrics, loss curve and
   * checkpoints are removed before the first step (the Hugging Face Trainer's `overwrite_output_dir`).
   * Without it such a folder is refused unless resuming.
   */
  overwriteOutputDir?: boolean;
  /** Loss scaling of a mixed-precision run (torch.amp.GradScaler's arguments; default its defaults). */
  gradScaler?: Partial<Omit<GradScalerOptions, 'enabled'>>;
}

/** What {@link train} returns. */
export interface TrainResult {
  state: TrainerState;
  /** Training loss of every optimizer step run in this call, by step. */
  stepLosses: Map<number, number>;
  /** Folder of the checkpoint loaded at the end (best_model_checkpoint, with --load-best-model-at-end), if any. */
  bestCheckpoint: string | null;
  interrupted: boolean;
  adapterDir: string;
}
