// LLaMA (Hugging Face's LlamaForCausalLM) on @huatuo/tensor, in reading order: token embedding,
// decoder layers (decoder-layer.ts), final RMSNorm, lm_head (tied or not); an adapter's trained copies of the
// embedding and lm_head (PEFT's modules_to_save) take the base's place. One forward serves
// training over padded batches and cached incremental decoding.

import {
  add,
  cast,
  checkpoint,
  crossEntropy,
  embedding,
  isGradEnabled,
  mul,
  reshape,
  rmsNorm,
  slice,
  tensor,
  type FloatDType,
  type Tensor,
} from '@huatuo/tensor';
import type { LlamaConfig } from '../formats/config.js';
import { checkedMaxModelLen, derivedMaxModelLen, describeMaxModelLen } from '../formats/context-length.js';
import { lmHeadLoss } from './chunked-loss.js';
import { ModelError } from '../errors.js';
import type { KvCache } from './kv-cache.js';
import type { DecoderLayer } from './decoder-layer.js';
import { RotaryFrequencies } from './rotary.js';
import type { Linear } from './linear.js';
import type { LoraConfig } from '../lora/lora-config.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { TokenizerFileBytes } from '../tokenizers/tokenizer-files.js';

/** The trained copies of embed_tokens and lm_head that replace the base's (PEFT's modules_to_save), null where the base's is used. */
export interface SavedCopies {
  readonly embedTokens: Tensor[] | null;
  readonly lmHead: Linear | null;
  /**
   * The tokenizer of the copies' vocabulary where it is not the base's: an adapter trained on a resized vocabulary
   * ships the tokenizer it was trained with (see loadAdapterFromFiles' `adapterTokenizer`); null where the base's applies.
   * It goes with the copies: once they are dropped, the base's vocabulary and tokenizer are in use again.
   */
  readonly tokenizer: Tokenizer | null;
  /**
   * The files `tokenizer` was read from (tokenizer.json, tokenizer.model, tokenizer_config.json, ...), byte for byte, which
   * saveAdapter and saveMergedModel write beside the weights so the saved folder loads with the same tokenizer; absent or
   * null where there are none.
   */
  readonly tokenizerFiles?: TokenizerFileBytes | null;
}

/** Options of {@link LlamaModel.forward}. */
export interface ForwardOptions {
  /**
   * [B, S] (u32, i32 or f32): 1 for real tokens, 0 for padding, over every key position, i.e.
   * S = T without a cache and S = cache.length + T with one. Default: no padding.
   */
  readonly attentionMask?: Tensor | null;
  /** i32 positions [T] or [B, T] for RoPE; default cache.length + 0 .. T-1. */
  readonly positions?: Tensor;
  /** Cache to read earlier keys/values from and append this step's to (inference). */
  readonly cache?: KvCache;
  /** Compute logits of the last position only ([B, 1, V]), as decoding needs. */
  readonly lastOnly?: boolean;
}

/** Options of {@link LlamaModel.loss}. */
export interface LossOptions {
  /** Rows of logits computed at once by the fused lm_head and loss (default: 32 MiB of f32 logits). */
  readonly lossChunkRows?: number;
}

/**
 * A LLaMA causal language model. Create it with `loadLlama` (a Hugging Face folder) or
 * `createRandomLlama`; call inside `tidy()` (or `noGrad()` for inference).
 *
 * @example
 * const logits = noGrad(() => model.forward(tensor(new Int32Array([1, 278, 4996]), [1, 3]))); // [1, 3, V]
 */
export class LlamaModel {
  /** Whether LoRA dropout is active (training) or not (evaluation, generation). */
  training = false;
  /** The attached LoRA adapter's hyperparameters, or null (see applyLora). */
  loraConfig: LoraConfig | null = null;
  /**
   * Activation checkpointing per decoder layer (HF's gradient_checkpointing_enable()): while the
   * graph is recorded, each layer keeps only its input and runs again inside backward. Gradients
   * are unchanged; activation memory is one layer's instead of all layers'.
   */
  gradientCheckpointing = false;
  /**
   * Bytes one activation buffer may hold: where the MLP's [B, T, I] would be larger, it runs on
   * chunks of token rows. Set when the model is created: the limit its weights were split at.
   */
  maxBindingBytes = Infinity;
  /** RoPE's frequencies (rope_theta, rope_scaling), with the state of dynamic scaling. */
  readonly rotary: RotaryFrequencies;
  private dropoutCounter: number;
  private maxModelLenSet: number | null = null;

  private copies: SavedCopies = { embedTokens: null, lmHead: null, tokenizer: null };
  private activeConfig: LlamaConfig;

  constructor(
    private readonly baseConfig: LlamaConfig,
    /** Dtype of the base weights (norms, embeddings, unquantized projections) and activations. */
    readonly dtype: FloatDType,
    /** The base's embedding rows [V, C], split along the vocabulary into parts when over the binding limit. */
    readonly baseEmbedParts: Tensor[],
    readonly layers: DecoderLayer[],
    /** [C] */
    public norm: Tensor,
    /** The base's lm_head [V, C]: the embedding parts themselves when `tieWordEmbeddings`. */
    readonly baseLmHead: Linear,
    seed = 0,
  ) {
    this.dropoutCounter = seed >>> 0;
    this.rotary = new RotaryFrequencies(baseConfig);
    this.activeConfig = baseConfig;
  }

  /** The model's config; `vocabSize` is the rows of the embedding in use (an adapter's saved copy may resize it). */
  get config(): LlamaConfig {
    return this.activeConfig;
  }

  /**
   * The adapter's trained copies of embed_tokens and lm_head (PEFT's modules_to_save), f32 leaves split along the
   * vocabulary like the base's, that take the base's place while the adapter is attached; null where the base's is used.
   * Their rows set the vocabulary (an adapter trained on a resized vocabulary brings its own size).
   */
  get savedModules(): SavedCopies {
    return this.copies;
  }

  set savedModules(copies: SavedCopies) {
    if (copies.tokenizer !== null && copies.embedTokens === null) throw new ModelError('internal: a tokenizer of its own vocabulary was given without the trained embed_tokens of that vocabulary');
    if ((copies.tokenizerFiles ?? null) !== null && copies.tokenizer === null) throw new ModelError('internal: tokenizer files were given without the tokenizer read from them');
    this.copies = copies;
    const rows = copies.embedTokens?.reduce((s, p) => s + p.shape[0]!, 0) ?? this.baseConfig.vocabSize;
    this.activeConfig = rows === this.baseConfig.vocabSize ? this.baseConfig : Object.freeze({ ...this.baseConfig, vocabSize: rows });
  }

  /**
   * The longest sequence, prompt plus new tokens, that generate, the trainer and the server accept: config.json's
   * {@link derivedMaxModelLen} (max_position_embeddings stretched by rope_scaling, as vLLM's max_model_len) unless
   * {@link setMaxModelLen} gave another.
   */
  get maxModelLen(): number {
    return this.maxModelLenSet ?? derivedMaxModelLen(this.baseConfig);
  }

  /** Where {@link maxModelLen} comes from, for messages: config.json's fields (see describeMaxModelLen) or the setting. */
  get maxModelLenSource(): string {
    return this.maxModelLenSet === null ? describeMaxModelLen(this.baseConfig) : 'set by --max-model-len (setMaxModelLen)';
  }

  /**
   * Sets {@link maxModelLen}, as vLLM's --max-model-len: refused (ModelError) above the derived length unless
   * `allowLong`, vLLM's VLLM_ALLOW_LONG_MAX_MODEL_LEN, accepts positions the model was never trained for.
   * @example model.setMaxModelLen(8192);
   */
  setMaxModelLen(maxModelLen: number, options: { allowLong?: boolean } = {}): void {
    this.maxModelLenSet = checkedMaxModelLen(this.baseConfig, maxModelLen, options.allowLong ?? false);
  }

  /** Embedding rows [V, C] in use, in parts along the vocabulary: the adapter's trained copy (f32) or the base's. */
  get embedParts(): Tensor[] {
    return this.savedModules.embedTokens ?? this.baseEmbedParts;
  }

  /** lm_head [V, C] in use: the adapter's trained copy (f32 parts) or the base's. */
  get lmHead(): Linear {
    return this.savedModules.lmHead ?? this.baseLmHead;
  }

  /**
   * Restarts the stream of dropout seeds: the next forward in training draws the same masks
   * for the same seed (a resumed run repeats an interrupted one exactly).
   */
  seedDropout(seed: number): void {
    this.dropoutCounter = seed >>> 0;
  }

  /** A fresh seed for each layer's dropout in training, undefined otherwise (internal). */
  nextDropoutSeed(): number | undefined {
    if (!this.training) return undefined;
    this.dropoutCounter = (this.dropoutCounter + 0x9e3779b9) >>> 0;
    return this.dropoutCounter;
  }

  /** How the decoder projections are stored: 'none', 'int8' or 'nf4' (see loadLlama's `quantize`). */
  get quantization(): 'none' | 'int8' | 'nf4' {
    return this.layers[0]?.qProj.quantized?.format ?? 'none';
  }

  /** Every projection of every layer (not the lm_head). */
  linears(): Linear[] {
    return this.layers.flatMap((l) => l.linears());
  }

  /**
   * The adapter's parameters, the only ones that train: A and B of each adapted projection (and DoRA's magnitude after
   * them), then the parts of the trained copies of embed_tokens and lm_head (modules_to_save).
   */
  loraParameters(): Tensor[] {
    const lora = this.linears().flatMap((l) => (l.lora === null ? [] : l.lora.magnitude ? [l.lora.A, l.lora.B, l.lora.magnitude] : [l.lora.A, l.lora.B]));
    return [...lora, ...(this.savedModules.embedTokens ?? []), ...(this.savedModules.lmHead?.parts ?? [])];
  }

  /** Token embeddings of `ids` [B, T] -> [B, T, C]; gathers per vocabulary part when split. */
  embed(ids: Tensor): Tensor {
    this.checkIdsInVocabulary(ids);
    const x = this.gather(ids, this.embedParts); // [B, T, C]
    return x.dtype === this.dtype ? x : cast(x, this.dtype);
  }

  /**
   * Refuses ids outside the embedding in use, where they are known on the host: a tokenizer may hold more tokens
   * than the model has rows (transformers adds a special token its vocabulary lacks at the next free id).
   */
  private checkIdsInVocabulary(ids: Tensor): void {
    const host = ids.hostIndices();
    if (host === null) return;
    const rows = this.config.vocabSize;
    const at = host.findIndex((id) => id < 0 || id >= rows);
    if (at < 0) return;
    const id = host[at]!;
    if (id < 0) throw new ModelError(`forward: token id ${id} is negative; ids index the ${rows} rows of the embedding`);
    throw new ModelError(
      `forward: token id ${id} is past the model's ${rows} embedding rows: the tokenizer holds tokens the model lacks ` +
        '(transformers adds a special token named in tokenizer_config.json or special_tokens_map.json that the vocabulary lacks, such as a pad_token "[PAD]", at the next free id). ' +
        'Name a token of the vocabulary for it instead, or load the adapter whose trained embed_tokens covers that vocabulary.',
    );
  }

  /** Rows of `parts` (one matrix split along its rows) at `ids` [B, T] -> [B, T, C], in the parts' dtype. */
  private gather(ids: Tensor, parts: readonly Tensor[]): Tensor {
    if (parts.length === 1) return embedding(ids, parts[0]!);
    const host = ids.hostIndices();
    if (host === null) {
      throw new ModelError('forward: the embedding is split into parts, which needs ids created from host data (tensor(new Int32Array(...))), not computed on the GPU');
    }
    const outs: Tensor[] = [];
    let start = 0;
    for (const part of parts) {
      const rows = part.shape[0]!;
      const local = new Int32Array(host.length);
      const inside = new Float32Array(host.length);
      for (let i = 0; i < host.length; i++) {
        const id = host[i]! - start;
        if (id >= 0 && id < rows) {
          local[i] = id;
          inside[i] = 1;
        }
      }
      start += rows;
      const e = embedding(tensor(local, ids.shape), part); // [B, T, C]
      const m = tensor(inside, [...ids.shape, 1], { dtype: 'f32' });
      outs.push(mul(e, part.dtype === 'f32' ? m : cast(m, part.dtype)));
    }
    return outs.reduce((a, b) => add(a, b));
  }

  /**
   * Logits [B, T, V] in f32 for token ids [B, T] (i32). With a cache, `ids` are the new tokens
   * and the cache grows by T.
   */
  forward(ids: Tensor, options: ForwardOptions = {}): Tensor {
    const x = this.hiddenStates(ids, options); // [B, T, C] (or [B, 1, C] with lastOnly)
    return this.logits(x);
  }

  /** The final-norm hidden states [B, T, C] that lm_head turns into logits (same options as forward). */
  hiddenStates(ids: Tensor, options: ForwardOptions = {}): Tensor {
    if (ids.rank !== 2 || ids.dtype !== 'i32') {
      throw new ModelError(`forward: ids should be i32 [B, T], got ${ids.dtype} [${ids.shape.join(', ')}]`);
    }
    const [B, T] = [ids.shape[0]!, ids.shape[1]!];
    const cache = options.cache;
    const past = cache?.length ?? 0;
    if (cache !== undefined && cache.batchSize !== B) {
      throw new ModelError(`forward: ids have ${B} rows but the cache has ${cache.batchSize}`);
    }
    const mask = options.attentionMask ?? null;
    if (mask !== null && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== past + T)) {
      throw new ModelError(`forward: attentionMask is [${mask.shape.join(', ')}], expected [${B}, ${past + T}] (batch, cached plus new positions)`);
    }
    const positions = options.positions ?? tensor(Int32Array.from({ length: T }, (_, i) => past + i));
    const freq = this.rotary.forPositions(positions);
    let x = this.embed(ids); // [B, T, C]
    const checkpointed = this.gradientCheckpointing && cache === undefined && isGradEnabled();
    for (const layer of this.layers) {
      const seed = this.nextDropoutSeed();
      if (checkpointed) {
        const inputs = mask === null ? [x, positions] : [x, positions, mask];
        const run = (h: Tensor, p: Tensor, m?: Tensor) => layer.forward(this, h, p, m ?? null, undefined, seed, freq);
        x = checkpoint(run as (...t: Tensor[]) => Tensor, inputs, layer.trainableParameters());
      } else {
        x = layer.forward(this, x, positions, mask, cache, seed, freq);
      }
    }
    cache?.advance(T);
    if (options.lastOnly) x = slice(x, 1, T - 1, T); // [B, 1, C]
    return rmsNorm(x, this.norm, this.config.rmsNormEps);
  }

  /** lm_head over hidden states [..., C] -> f32 logits [..., V]. */
  logits(hidden: Tensor): Tensor {
    const head = this.lmHead;
    // An adapter's f32 copy of lm_head computes in f32 (its gradient reaches the f32 leaf).
    const h = head.parts.length > 0 && head.parts[0]!.dtype !== hidden.dtype ? cast(hidden, head.parts[0]!.dtype) : hidden;
    const logits = head.forward(h);
    return logits.dtype === 'f32' ? logits : cast(logits, 'f32');
  }

  /**
   * Mean next-token cross-entropy of a padded batch, as Hugging Face computes it: logits at
   * positions 0..T-2 against labels at 1..T-1, labels of -100 ignored.
   * ids, labels: i32 [B, T]; attentionMask [B, T] (1 real, 0 padding).
   * With labels created from host data, lm_head and the loss run only on the positions whose
   * next label counts (the answer tokens of an SFT batch), fused and in chunks of rows
   * (`lossChunkRows`, default 32 MiB of f32 logits): the same loss and gradients as the full
   * [B, T, V] logits, which are never materialized.
   */
  loss(ids: Tensor, labels: Tensor, attentionMask?: Tensor | null, options: LossOptions = {}): Tensor {
    const [B, T] = [ids.shape[0]!, ids.shape[1]!];
    if (labels.rank !== 2 || labels.shape[0] !== B || labels.shape[1] !== T || labels.dtype !== 'i32') {
      throw new ModelError(`loss: labels should be i32 [${B}, ${T}] like ids, got ${labels.dtype} [${labels.shape.join(', ')}]`);
    }
    const hidden = this.hiddenStates(ids, { attentionMask: attentionMask ?? null }); // [B, T, C]
    const host = labels.hostIndices();
    if (host !== null) {
      const rows: number[] = [];
      const targets: number[] = [];
      for (let b = 0; b < B; b++) {
        for (let i = 1; i < T; i++) {
          const label = host[b * T + i]!;
          if (label === -100) continue;
          rows.push(b * T + i - 1);
          targets.push(label);
        }
      }
      if (rows.length > 0) {
        const C = this.config.hiddenSize;
        const picked = embedding(tensor(Int32Array.from(rows)), reshape(hidden, [B * T, C])); // [N, C]
        const t = tensor(Int32Array.from(targets)); // [N]
        const head = this.lmHead;
        if (head.lora !== null || head.quantized !== null) return crossEntropy(this.logits(picked), t, { ignoreIndex: -100 });
        const dtype = head.parts[0]!.dtype;
        return lmHeadLoss(picked.dtype === dtype ? picked : cast(picked, dtype), head.parts, t, options.lossChunkRows);
      }
    }
    const logits = this.logits(slice(hidden, 1, 0, T - 1)); // [B, T-1, V]
    const targets = slice(labels, 1, 1, T); // [B, T-1]
    return crossEntropy(logits, targets, { ignoreIndex: -100 });
  }

  /** Frees every weight and adapter. */
  dispose(): void {
    for (const l of this.layers) {
      l.inputNorm.dispose();
      l.postNorm.dispose();
      for (const p of l.linears()) p.dispose();
    }
    this.norm.dispose();
    for (const p of this.baseEmbedParts) p.dispose();
    if (!this.baseConfig.tieWordEmbeddings) this.baseLmHead.dispose();
    for (const p of this.savedModules.embedTokens ?? []) p.dispose();
    this.savedModules.lmHead?.dispose();
    this.savedModules = { embedTokens: null, lmHead: null, tokenizer: null };
  }
}
