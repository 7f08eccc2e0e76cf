// The adapted model as the trainer sees it: LoRA attached the way HuaTuo's recipe configures it,
// the built-in tiny demo base, and the micro-batch that fits the adapter. Browser-safe.
import {
  adaptedLinears,
  applyLora,
  configFromPreset,
  createRandomLlama,
  peftKey,
  peftMagnitudeKey,
  peftSavedEmbedKey,
  peftSavedLmHeadKey,
  type Linear,
  type LlamaConfigOverrides,
  type LlamaModel,
  type LoadAdapterOptions,
  type LoraTargetModule,
  type MemoryLimits,
  type Tokenizer,
} from '@huatuo/llama';
import { deviceInfo, type FloatDType, type Tensor } from '@huatuo/tensor';
import type { TrainConfig } from './config.js';
import { CheckpointError } from './errors.js';
import { fitMicroBatch } from './memory-plan.js';
import { runFiles } from './run-files.js';
import type { DeviceBatch, TrainableModel } from './train-types.js';

/** Name written into adapter_config.json's base_model_name_or_path for the demo model. */
export const DEMO_MODEL_NAME = 'huatuo-webgpu/tiny-llama-demo';

/** The demonstration base: LLaMA's architecture and real tokenizer, tiny random weights. */
export const DEMO_MODEL_SEED = 2023;

/** A base model with its tokenizer, ready for an adapter. */
export interface BaseModel {
  model: LlamaModel;
  /**
   * The tokenizer of the vocabulary the model computes with: that of an attached adapter bringing its own vocabulary
   * (the model's `savedModules.tokenizer`, see loadAdapterWithTokenizer), else {@link baseTokenizer}.
   */
  readonly tokenizer: Tokenizer;
  /** The base's own tokenizer, whatever adapter is attached. */
  readonly baseTokenizer: Tokenizer;
  /** The folder it came from, or {@link DEMO_MODEL_NAME}. */
  name: string;
  isDemo: boolean;
}

/**
 * A base model whose `tokenizer` follows the attached adapter: `tokenizer` (the base's own) unless an adapter that
 * brings its own vocabulary is attached, whose tokenizer is used until the adapter is removed or replaced.
 * @example const base = baseModelOf(await loadLlama(dir), await loadTokenizer(dir), dir, false);
 */
export function baseModelOf(model: LlamaModel, tokenizer: Tokenizer, name: string, isDemo: boolean): BaseModel {
  return {
    model,
    get tokenizer() {
      return model.savedModules.tokenizer ?? tokenizer;
    },
    baseTokenizer: tokenizer,
    name,
    isDemo,
  };
}

/**
 * The demonstration base: LLaMA's `tiny` preset (changed by `demoConfig`) with random weights
 * drawn from {@link DEMO_MODEL_SEED}, so every platform builds the same model, and LLaMA's tokenizer.
 * `dtype` is its weights' (f16 rounds the same f32 draws).
 * @example const base = demoBaseModel(tokenizerFromFiles({ tokenizerModel }), { numHiddenLayers: 1 });
 */
export function demoBaseModel(tokenizer: Tokenizer, demoConfig: LlamaConfigOverrides = {}, dtype: FloatDType = 'f32'): BaseModel {
  const model = createRandomLlama(configFromPreset('tiny', demoConfig), { seed: DEMO_MODEL_SEED, dtype });
  return baseModelOf(model, tokenizer, DEMO_MODEL_NAME, true);
}

/** Attaches HuaTuo's LoRA (r, alpha, dropout, targets, rsLoRA, DoRA and modules_to_save from the config) and wraps the model for the trainer. */
export function attachLora(base: BaseModel, config: TrainConfig): LoraModel {
  const targets = config.loraTargetModules as LoraTargetModule[];
  const modulesToSave = config.loraModulesToSave.length > 0 ? config.loraModulesToSave : null;
  applyLora(
    base.model,
    { r: config.loraR, alpha: config.loraAlpha, dropout: config.loraDropout, targetModules: targets, useRslora: config.loraUseRslora, useDora: config.loraUseDora, modulesToSave },
    { seed: config.seed },
  );
  base.model.gradientCheckpointing = config.gradientCheckpointing;
  return new LoraModel(base.model, base.name);
}

/** A LLaMA with LoRA adapters, as the trainer sees it. */
export class LoraModel implements TrainableModel {
  constructor(
    readonly llama: LlamaModel,
    readonly baseName: string,
  ) {}

  /** The dtype the base weights and activations compute in. */
  get dtype(): FloatDType {
    return this.llama.dtype;
  }

  /** The head dim of the model's attention. */
  get headDim(): number {
    return this.llama.config.headDim;
  }

  /**
   * transformers' num_parameters(exclude_embeddings=True) of the PEFT model (checked against 4.57.6's
   * modeling_utils.py and PEFT's module tree): every base weight, bias and norm, a quantized weight counted
   * unpacked (as num_parameters counts bitsandbytes' Params4bit twice its uint8 elements), less the weights of
   * nn.Embedding modules (embed_tokens, and lm_head when tied to it: named_parameters lists a shared weight
   * once, under embed_tokens); plus LoRA's A and B, DoRA's magnitudes, and the trained lm_head copy of
   * modules_to_save beside the original PEFT keeps (the embed_tokens copy is an nn.Embedding).
   */
  get nonEmbeddingParameters(): number {
    const llama = this.llama;
    const linear = (l: Linear) => l.outFeatures * l.inFeatures + (l.bias?.size ?? 0);
    let count = llama.norm.size;
    for (const layer of llama.layers) {
      count += layer.inputNorm.size + layer.postNorm.size;
      for (const l of layer.linears()) count += linear(l) + (l.lora ? l.lora.A.size + l.lora.B.size + (l.lora.magnitude?.size ?? 0) : 0);
    }
    if (!llama.config.tieWordEmbeddings) count += linear(llama.baseLmHead);
    if (llama.savedModules.lmHead) count += linear(llama.savedModules.lmHead);
    return count;
  }

  get trainableParameters(): ReadonlyMap<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const { layer, target, linear } of adaptedLinears(this.llama)) {
      if (!linear.lora) continue;
      out.set(peftKey(layer, target, 'A'), linear.lora.A);
      out.set(peftKey(layer, target, 'B'), linear.lora.B);
      if (linear.lora.magnitude) out.set(peftMagnitudeKey(layer, target), linear.lora.magnitude);
    }
    // The trained copies of modules_to_save, by PEFT's key and, when split along the vocabulary, their rows.
    for (const [key, parts] of [[peftSavedEmbedKey, this.llama.savedModules.embedTokens], [peftSavedLmHeadKey, this.llama.savedModules.lmHead?.parts ?? null]] as const) {
      let start = 0;
      for (const p of parts ?? []) {
        const end = start + p.shape[0]!;
        out.set(parts!.length === 1 ? key : `${key} rows ${start}-${end - 1}`, p);
        start = end;
      }
    }
    return out;
  }

  loss(batch: DeviceBatch, options: { training: boolean; dropoutSeed: number }): Tensor {
    this.llama.training = options.training;
    this.llama.seedDropout(options.dropoutSeed);
    try {
      return this.llama.loss(batch.inputIds, batch.labels, batch.attentionMask);
    } finally {
      this.llama.training = false;
    }
  }

  saveAdapter(dir: string): Promise<void> {
    return runFiles.saveAdapter(this.llama, dir, this.baseName);
  }

  /** Loads the run's own adapter from `dir` (a checkpoint, or the best one at the end), keeping the run's tokenizer. */
  loadAdapter(dir: string): Promise<void> {
    return runFiles.loadAdapter(this.llama, dir, runTokenizerKept(this.llama, dir));
  }
}

/**
 * loadAdapter's options for a run's own adapter in `dir` (a checkpoint of the run, or its best): the data was tokenized
 * with the tokenizer of the vocabulary in use (the base's, or the one an --init-adapter brought with its own
 * vocabulary), so that tokenizer and its files stay, and an adapter on another vocabulary is refused before it attaches.
 */
function runTokenizerKept(model: LlamaModel, dir: string): LoadAdapterOptions {
  const vocabSize = model.config.vocabSize;
  const { tokenizer, tokenizerFiles } = model.savedModules;
  return {
    beforeAttach: (adapter) => {
      if (adapter.vocabSize === vocabSize) return;
      throw new CheckpointError(
        `${dir} holds an adapter on a vocabulary of ${adapter.vocabSize} pieces, but this run's data was tokenized for ${vocabSize} (${tokenizer === null ? "the base's tokenizer" : 'the tokenizer of the --init-adapter'}); resume with the --base and --init-adapter the run started with`,
      );
    },
    adapterTokenizer: async () => {
      if (tokenizer === null) throw new Error(`internal: ${dir} brings its own vocabulary of ${vocabSize} pieces, but the run has no tokenizer of it`);
      return { tokenizer, files: tokenizerFiles ?? new Map() };
    },
  };
}

/**
 * The micro-batch: `config.microBatchSize`, or with 'auto' the largest power of two dividing the
 * effective batch whose training plan fits the adapter's binding limits and `--gpu-memory`.
 * Throws ConfigError naming the flag to change when none fits (see {@link fitMicroBatch}).
 */
export function chooseMicroBatch(model: LlamaModel, config: TrainConfig): number {
  return fitMicroBatch(model.config, config, model.dtype, deviceLimits(config));
}

/** The device's limits with `--gpu-memory`, or null before the device is opened. */
export function deviceLimits(config: TrainConfig): MemoryLimits | null {
  const info = deviceInfo();
  if (!info) return null;
  const total = config.gpuMemory > 0 ? { totalMemory: config.gpuMemory * 1024 ** 3 } : {};
  return { maxBufferSize: info.maxBufferSize, maxStorageBufferBindingSize: info.maxStorageBufferBindingSize, ...total };
}
