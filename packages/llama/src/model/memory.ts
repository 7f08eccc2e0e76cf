// GPU memory planning: bytes of weights, LoRA parameters, their gradients and AdamW state,
// activations kept for backward, logits and the KV cache, for a config, batch and sequence
// length; which weights must be split to fit the adapter's binding limit; and a refusal, up
// front and with the estimate in its message, of runs that cannot fit.

import { composedAttentionFor, matmulSplitBytes, type QuantFormat } from '@huatuo/tensor';
import { splitPartialBound } from '@huatuo/tensor/internal';
import { hasQkvBias, type LlamaConfig } from '../formats/config.js';
import type { LlamaModel } from './model.js';
import { lossChunkRows } from './chunked-loss.js';
import { MemoryError } from '../errors.js';
import { moduleGroup, type LoraTargetModule } from '../lora/lora-config.js';
import { adaptedLinears } from '../lora/lora.js';
import { formatBytes, productWorkspace, projectionBytes, projectionShape, splitRows } from './tensor-sizes.js';

/** The adapter limits a plan is checked against (WebGPU's `GPUSupportedLimits` names). */
export interface MemoryLimits {
  /** Largest single buffer. */
  readonly maxBufferSize: number;
  /** Largest range one storage binding may cover: tensors above it are split. */
  readonly maxStorageBufferBindingSize: number;
  /** Total GPU memory when known (WebGPU does not report it; pass it yourself). */
  readonly totalMemory?: number;
}

/** What run to plan. */
export interface MemoryPlanOptions {
  /** Sequences per step (for beam search, prompts x beams). */
  readonly batchSize: number;
  /** Tokens per sequence (training) or prompt plus new tokens (inference). */
  readonly seqLen: number;
  /** Dtype of the base weights and activations. Default 'f32'. */
  readonly dtype?: 'f32' | 'f16';
  /** LoRA adapter, when one is attached. */
  readonly lora?: {
    readonly r: number;
    readonly targetModules: readonly LoraTargetModule[];
    /** Inference: the adapters are added into the base weights, so no copies of A and B in the activation dtype are kept. */
    readonly merged?: boolean;
    /** DoRA (PEFT's use_dora): a trained f32 magnitude per output of each adapted projection, and its norms kept. */
    readonly useDora?: boolean;
    /** PEFT's modules_to_save: trained f32 copies [V, C] of embed_tokens and lm_head beside the base's (V the config's). */
    readonly modulesToSave?: { readonly embedTokens?: boolean; readonly lmHead?: boolean };
  };
  /** Training (graph kept for backward, gradients, AdamW state) or inference. Default: true when `lora` is given. */
  readonly training?: boolean;
  /**
   * How the decoder projections are stored: 'none' (in `dtype`), 'int8' (a byte per weight and an
   * f32 absmax per row) or 'nf4' (half a byte per weight, an 8-bit absmax code per block of 64,
   * an f32 scale per 256 blocks). Embeddings, lm_head and norms stay in `dtype`. Default 'none'.
   */
  readonly quantize?: 'none' | QuantFormat;
  /** Activation checkpointing per decoder layer (training): keep layer inputs, recompute in backward. */
  readonly gradientCheckpointing?: boolean;
  /**
   * Attention runs composed of matmuls and a softmax (GPUs, short sequences), keeping f32 [B, H, T, S]
   * scores per layer. Default: what the open device would do (`composedAttentionFor`), false without one.
   */
  readonly composedAttention?: boolean;
  /**
   * Whether products may be split along k into f32 partial products (the workspace then counts the
   * largest, at most 16 MiB): true counts the most any adapter may split, false none. Default: what
   * the open device's matmul choice splits (`matmulSplitBytes`), the most any adapter may without one.
   */
  readonly splitK?: boolean;
  /** KV cache length for inference; default `seqLen`. Ignored in training. */
  readonly kvCacheLen?: number;
  /**
   * Inference computes logits of the last position only ([batchSize, V]), as decoding does (the prompt's
   * forward included). Default false: logits of every position. Ignored in training.
   */
  readonly lastPositionLogits?: boolean;
}

/** A weight stored in several buffers because it exceeds the binding limit. */
export interface TensorSplit {
  /** Hugging Face name pattern, e.g. `model.embed_tokens.weight` or `model.layers.*.mlp.up_proj.weight`. */
  readonly name: string;
  readonly shape: readonly [number, number];
  readonly bytes: number;
  /** Row counts of the parts, split along the first (output or vocabulary) dimension. */
  readonly rows: readonly number[];
}

/** Estimated GPU bytes of a run. */
export interface MemoryPlan {
  /** Frozen base weights, quantized or not. */
  readonly weights: number;
  readonly lora: number;
  /** Gradients of the trainable (LoRA) parameters. */
  readonly gradients: number;
  /** AdamW's two moments per trainable parameter, f32. */
  readonly optimizer: number;
  /**
   * Activations: those kept for backward in training (with checkpointing, every layer's input plus
   * one layer rebuilt in backward), one layer's temporaries in inference.
   */
  readonly activations: number;
  /**
   * Logits: in training one chunk of the fused loss (its f32 logits, their gradient and the lm_head
   * output); with the copy of an lm_head part its product may make (see {@link productWorkspace}).
   */
  readonly logits: number;
  /**
   * Temporaries of the decoder layers: a projection's copy of its weight (see {@link productWorkspace}),
   * the f32 partial products of a product split along k (at most 16 MiB, where products may split:
   * {@link MemoryPlanOptions.splitK}) and, in training, the gradients a layer's backward holds at once (the
   * more of [B, T, 3 I + C], and [B, T, 2 I + 2 C] beside the copy).
   */
  readonly workspace: number;
  readonly kvCache: number;
  /**
   * The peak: the sum of the parts, except in training, where the loss's logits and a layer's backward
   * (its workspace, and with checkpointing the layer rebuilt) are not held at once: the larger counts.
   */
  readonly total: number;
  /** The largest activation tensor that is not split (the MLP's is, in chunks of token rows, over the binding limit). */
  readonly largestActivation: { readonly name: string; readonly bytes: number };
  /** Weights split to fit the binding limit (empty when no limits were given or all fit). */
  readonly splits: readonly TensorSplit[];
}

/**
 * Estimates the GPU memory of a run and, given `limits`, which weights must be split.
 * The estimate counts tensors, not the pool's rounding or WebGPU's own overhead.
 *
 * @example
 * const plan = planMemory(llamaPresets['llama-7b'], { batchSize: 4, seqLen: 256, dtype: 'f16', lora: { r: 8, targetModules: ['q_proj', 'v_proj'] } });
 * formatBytes(plan.total);
 */
export function planMemory(config: LlamaConfig, options: MemoryPlanOptions, limits?: MemoryLimits): MemoryPlan {
  const { batchSize: B, seqLen: T } = options;
  for (const [k, v] of [['batchSize', B], ['seqLen', T]] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new MemoryError(`planMemory: ${k} should be a positive integer, got ${v}`);
  }
  const bytes = options.dtype === 'f16' ? 2 : 4;
  const training = options.training ?? options.lora !== undefined;
  const { hiddenSize: C, intermediateSize: I, vocabSize: V, numHiddenLayers: L, numAttentionHeads: H } = config;
  const kvd = config.numKeyValueHeads * config.headDim;
  const N = B * T;

  const quantize = options.quantize ?? 'none';
  let layerBytes = 2 * C * bytes;
  for (const t of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const) {
    const [out, inp] = projectionShape(config, t);
    layerBytes += projectionBytes(out, inp, quantize, bytes);
  }
  // Qwen2's q, k and v biases, in the weights' dtype whatever the projections' format.
  if (hasQkvBias(config)) layerBytes += (H * config.headDim + 2 * kvd) * bytes;
  const weights = (V * C * (config.tieWordEmbeddings ? 1 : 2) + C) * bytes + L * layerBytes;

  let loraElements = 0;
  let loraActivations = 0;
  for (const t of options.lora?.targetModules ?? []) {
    const [out, inp] = projectionShape(config, t);
    loraElements += L * options.lora!.r * (out + inp);
    // The adapter's input (dropped out), x A^T and the output with the update added (linearAdd's).
    loraActivations += inp + options.lora!.r + out;
    if (options.lora!.useDora) {
      // m [out] trains like A and B; the output before DoRA's rescaling is kept for m's gradient.
      loraElements += L * out;
      loraActivations += out;
    }
  }
  // An unmerged adapter at inference keeps A and B cast to the activation dtype beside the f32 leaves.
  const keptCasts = !training && bytes === 2 && !options.lora?.merged ? loraElements * 2 : 0;
  // Decoding's fused products keep the B matrices of q/k/v and of gate/up packed in one buffer where two or three are adapted
  // (not DoRA adapters, which run their separate products).
  let packed = 0;
  if (!training && options.lora !== undefined && !options.lora.merged && !options.lora.useDora) {
    for (const group of [['q_proj', 'k_proj', 'v_proj'], ['gate_proj', 'up_proj']]) {
      const adapted = options.lora.targetModules.filter((t) => group.includes(t));
      if (adapted.length > 1) for (const t of adapted) packed += L * options.lora.r * projectionShape(config, t)[0] * bytes;
    }
  }
  // DoRA keeps ||W_o||^2 and ||W + scaling B A|| per output (f32) beside each adapter.
  let doraNorms = 0;
  if (options.lora?.useDora && !options.lora.merged) for (const t of options.lora.targetModules) doraNorms += L * 2 * projectionShape(config, t)[0] * 4;
  // Trained copies of embed_tokens and lm_head (modules_to_save): f32 leaves with an f32 gradient and two AdamW moments each.
  const savedHead = options.lora?.modulesToSave?.lmHead === true;
  const savedElements = ((options.lora?.modulesToSave?.embedTokens ? 1 : 0) + (savedHead ? 1 : 0)) * V * C;
  const lora = (loraElements + savedElements) * 4 + keptCasts + packed + doraNorms;
  const gradients = training ? (loraElements + savedElements) * 4 : 0;
  const optimizer = training ? 2 * (loraElements + savedElements) * 4 : 0;

  const S = training ? T : (options.kvCacheLen ?? T);
  // Fused attention keeps no [B, H, T, S] scores, only the output and a logsumexp per row and head.
  // Composed attention (GPUs, short sequences) keeps f32 score matrices (the products, the masked
  // scores, the probabilities and, with a padding mask as in SFT batches, the masked probabilities), the
  // [B, T, S] masks, and f32 copies of q (scaled), k, v and the output.
  const composed = options.composedAttention ?? composedAttentionFor(B, H, T, S);
  const f32Copies = bytes === 4 ? N * C : N * (3 * C + 2 * kvd);
  const attentionStats = composed ? (4 * H + 3) * B * T * S * 4 + f32Copies * 4 : B * H * T * 4;
  const limit = limits === undefined ? Infinity : Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  let activations: number;
  // Training, per layer: the two norms, q/k/v (each adapter's input, x A^T and updated output besides), the
  // rotations of q and k, v made contiguous for the fused attention kernel, the attention output, its
  // logsumexp and its [B, T, H D] copy, gate, up and their SwiGLU product, and o_proj's and down_proj's
  // outputs and the residual sums (one tensor where the residual is added in the product's epilogue:
  // a dense weight in one part, no adapter on it; Linear.forwardAdd). The last sum is the layer's output.
  let layer = 0;
  if (training) {
    const adapted = new Set(options.lora?.targetModules ?? []);
    const fused = (t: 'o_proj' | 'down_proj') => quantize === 'none' && !adapted.has(t) && projectionBytes(...projectionShape(config, t), 'none', bytes) <= limit;
    const residuals = (fused('o_proj') ? 1 : 2) + (fused('down_proj') ? 1 : 2);
    layer = N * (6 * C + (composed ? 3 : 4) * kvd + residuals * C + 3 * I + loraActivations) * bytes + attentionStats;
    // Besides the layers, the embedding (the first layer's input), the final norm and the rows the loss picks.
    const outside = 3 * N * C * bytes;
    // With checkpointing each layer keeps only its output [B, T, C]; backward rebuilds one layer at a time.
    activations = options.gradientCheckpointing ? L * N * C * bytes + layer + outside : L * layer + outside;
  } else {
    activations = N * (4 * C + 2 * kvd + 3 * I) * bytes + attentionStats;
  }
  // Training's loss runs lm_head in chunks of rows (chunked-loss.ts): one chunk's f32 logits at a time.
  const logitRows = training ? Math.min(N, lossChunkRows(V)) : options.lastPositionLogits ? B : N;
  const logitBytes = logitRows * V * 4;
  // Products copy their weight (productWorkspace): lm_head's largest part over the logit rows, one
  // projection over the tokens.
  // A trained copy of lm_head is f32 and computes in f32.
  const headBytes = savedHead ? 4 : bytes;
  const headRows = Math.max(...(V * C * headBytes > limit ? splitRows(V, C * headBytes, limit) : [V]));
  const headCopy = productWorkspace(logitRows, headRows, C, 'none', headBytes);
  // Training a copy of lm_head: each loss chunk's weight gradient [V, C] f32 before it is added to the sum.
  const headGradient = training && savedHead ? V * C * 4 : 0;
  const logits = (training ? 3 * logitBytes : logitBytes) + headCopy + headGradient;
  let projectionCopy = 0;
  for (const t of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const) {
    const [out, inp] = projectionShape(config, t);
    projectionCopy = Math.max(projectionCopy, productWorkspace(N, out, inp, quantize, bytes));
  }
  // A layer's backward holds the most at its MLP, beside what the forward kept: in SwiGLU's backward the
  // residual's gradient [N, C] and the [N, I] gradients of the SwiGLU product, gate and up; then in gate's or
  // up's product its [N, C] output beside gate's and up's gradients, the residual's and the product's
  // workspace (the copy of its weight, NF4's decoded block absmaxes).
  const partials = options.splitK === false ? 0 : splitPartials(config, options, N, S, headRows, logitRows, composed, limit);
  const mlpBackward = Math.max(N * (3 * I + C) * bytes, N * (2 * I + 2 * C) * bytes + projectionCopy);
  const workspace = partials + (training ? mlpBackward : projectionCopy);
  const kvCache = training ? 0 : 2 * L * B * kvd * S * bytes;
  // The loss's logits are freed before backward runs a layer (with checkpointing, rebuilds it): the larger counts.
  const oneLayer = training && options.gradientCheckpointing ? layer : 0;
  const transient = training ? Math.max(logits, oneLayer + workspace) - oneLayer : logits + workspace;
  const total = weights + lora + gradients + optimizer + activations + transient + kvCache;

  const candidates: [string, number][] = [
    [training ? `loss chunk of logits [${logitRows}, ${V}] f32` : logitRows === B && T > 1 ? `logits [${B}, 1, ${V}] f32` : `logits [${B}, ${T}, ${V}] f32`, logitBytes],
    // The MLP's [B, T, I] runs in chunks of token rows when over the binding limit (mlpChunkRows):
    // the hidden states [B, T, C] (residual, norms, attention) are the largest that stay whole.
    [`hidden states [${B}, ${T}, ${C}] ${options.dtype ?? 'f32'}`, N * C * bytes],
  ];
  const largest = candidates.reduce((a, b) => (b[1] > a[1] ? b : a));

  const splits: TensorSplit[] = [];
  if (limits !== undefined) {
    const matrices: [string, number, number][] = [['model.embed_tokens.weight', V, C]];
    if (!config.tieWordEmbeddings) matrices.push(['lm_head.weight', V, C]);
    for (const t of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const) {
      const [out, inp] = projectionShape(config, t);
      matrices.push([`model.layers.*.${moduleGroup(t)}.${t}.weight`, out, inp]);
    }
    for (const [name, rows, cols] of matrices) {
      const b = rows * cols * bytes;
      if (b > limit) splits.push({ name, shape: [rows, cols], bytes: b, rows: splitRows(rows, cols * bytes, limit) });
    }
  }
  return {
    weights,
    lora,
    gradients,
    optimizer,
    activations,
    logits,
    workspace,
    kvCache,
    total,
    largestActivation: { name: largest[0], bytes: largest[1] },
    splits,
  };
}

/** The plan as one line: "weights 12.6 GiB, LoRA 16.0 MiB, ...; peak 14.1 GiB" (the peak is the sum of the parts). */
export function formatMemoryPlan(plan: MemoryPlan): string {
  const parts: [string, number][] = [
    ['weights', plan.weights],
    ['LoRA', plan.lora],
    ['gradients', plan.gradients],
    ['AdamW state', plan.optimizer],
    ['activations', plan.activations],
    ['logits', plan.logits],
    ['workspace', plan.workspace],
    ['KV cache', plan.kvCache],
  ];
  return `${parts.map(([k, v]) => `${k} ${formatBytes(v)}`).join(', ')}; peak ${formatBytes(plan.total)}`;
}

/**
 * The plan of generating with `model` as it is loaded: its dtype and quantization, its adapter (merged
 * or not), `batch` sequences of up to `length` tokens, logits of the last position only.
 */
export function inferencePlan(model: LlamaModel, batch: number, length: number): MemoryPlan {
  const adapted = adaptedLinears(model);
  const merged = adapted.every(({ linear }) => linear.merged);
  // Per-module ranks and layer subsets are planned as the largest rank on every layer of each adapted projection: an upper bound.
  const modulesToSave = { embedTokens: model.savedModules.embedTokens !== null, lmHead: model.savedModules.lmHead !== null };
  const lora = adapted.length === 0
    ? undefined
    : { r: Math.max(...adapted.map(({ linear }) => linear.lora!.A.shape[0]!)), targetModules: [...new Set(adapted.map((a) => a.target))], merged, useDora: adapted.some(({ linear }) => linear.isDora), modulesToSave };
  return planMemory(model.config, { batchSize: batch, seqLen: length, dtype: model.dtype, quantize: model.quantization, training: false, lastPositionLogits: true, lora });
}

/**
 * Throws MemoryError, with the whole estimate in the message, when the plan cannot fit:
 * an activation that is not split (the hidden states, a loss chunk) over the binding or buffer limit, or
 * a total over `limits.totalMemory` when that is known.
 */
export function checkMemoryPlan(plan: MemoryPlan, limits: MemoryLimits, what = 'this run'): void {
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (plan.largestActivation.bytes > limit) {
    throw new MemoryError(
      `${what}: the ${plan.largestActivation.name} needs ${formatBytes(plan.largestActivation.bytes)}, over the adapter's ` +
        `binding limit of ${formatBytes(limit)}; reduce the batch size or sequence length (estimate: ${formatMemoryPlan(plan)})`,
    );
  }
  if (limits.totalMemory !== undefined && plan.total > limits.totalMemory) {
    throw new MemoryError(
      `${what}: needs about ${formatBytes(plan.total)} of GPU memory, more than the ${formatBytes(limits.totalMemory)} available; ` +
        `use dtype f16, a smaller batch or shorter sequences (estimate: ${formatMemoryPlan(plan)})`,
    );
  }
}

/**
 * The most bytes of f32 partial products one product of the run may hold when it is split along k: the
 * projections and lm_head (forward, and backward to their input), the LoRA products, and composed
 * attention's batched products. One product is split at a time, and its partials go when it is summed.
 */
function splitPartials(config: LlamaConfig, options: MemoryPlanOptions, N: number, S: number, headRows: number, logitRows: number, composed: boolean, limit: number): number {
  const { hiddenSize: C, numAttentionHeads: H } = config;
  const training = options.training ?? options.lora !== undefined;
  const T = options.seqLen;
  const hd = config.headDim;
  const products: [number, number, number, number][] = [[logitRows, C, headRows, 1]]; // [M, K, N, batch]
  if (training) products.push([logitRows, headRows, C, 1]);
  // A trained copy of lm_head: dlogits^T h, its weight's gradient.
  if (training && options.lora?.modulesToSave?.lmHead) products.push([headRows, logitRows, C, 1]);
  for (const t of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const) {
    const [out, inp] = projectionShape(config, t);
    products.push([N, inp, out, 1]);
    if (training) products.push([N, out, inp, 1]);
  }
  for (const t of options.lora?.targetModules ?? []) {
    const [out, inp] = projectionShape(config, t);
    const r = options.lora!.r;
    // x A^T, h B^T; backward: dy B, dh A, dh^T x (A's gradient), dy^T h (B's gradient).
    products.push([N, inp, r, 1], [N, r, out, 1], [N, out, r, 1], [N, r, inp, 1], [r, N, inp, 1], [out, N, r, 1]);
  }
  if (composed) {
    const BH = options.batchSize * H;
    // q k^T, p v; backward: dO v^T, dS k, dS^T q, p^T dO.
    products.push([T, hd, S, BH], [T, S, hd, BH]);
    if (training) products.push([T, hd, S, BH], [T, S, hd, BH], [S, T, hd, BH], [S, T, hd, BH]);
  }
  const bytes = options.splitK === true ? (m: number, k: number, n: number, batch: number) => splitPartialBound(m, k, n, batch, limit) : matmulSplitBytes;
  return Math.max(0, ...products.map(([m, k, n, batch]) => bytes(m, k, n, batch)));
}
