// The demonstration's stand-in for LLaMA's pretraining: every weight of the tiny base trained as a
// causal language model (loss on every token) on the full text of a few demo records, so that
// HuaTuo's LoRA recipe afterwards starts from a model that knows them.
import { AdamW, clipGradNorm, readyAttention, startScope, tensor, type Tensor } from '@huatuo/tensor';
import type { LlamaModel } from '@huatuo/llama';
import { chunkOrder, collate, epochOrder, textTokenizer, tokenizeText, type TextTokenizer, type TokenizedExample } from './batch.js';
import type { QaRecord } from './data.js';
import type { BaseModel } from './lora-model.js';
import type { MetricsRow } from './metrics.js';
import { generatePrompt, type PromptTemplate } from './prompt.js';

/** Options of {@link pretrainBase}. */
export interface PretrainOptions {
  /** Optimizer steps. */
  steps: number;
  /** Sequences per optimizer step. */
  batchSize: number;
  /** Sequences per forward pass (gradients accumulate to batchSize). */
  microBatchSize: number;
  /** Peak AdamW learning rate, reached after warmupSteps and decayed linearly to 0. */
  learningRate: number;
  warmupSteps: number;
  /** Longest sequence in tokens, BOS and EOS included. */
  cutoffLen: number;
  seed: number;
  onStep?: (row: MetricsRow & { loss: number }) => void;
}

/** Every weight of a LLaMA: embeddings, norms, projections and lm_head (tied weights once). */
export function baseParameters(model: LlamaModel): Tensor[] {
  const params = new Set<Tensor>([...model.embedParts, model.norm, ...model.lmHead.parts]);
  for (const layer of model.layers) {
    params.add(layer.inputNorm);
    params.add(layer.postNorm);
    for (const linear of layer.linears()) for (const part of linear.parts) params.add(part);
  }
  return [...params];
}

/**
 * The text encoded as training encodes a record ({@link tokenizeText}: BOS as the tokenizer adds it,
 * LLaMA's does, and EOS when it fits), labels on every token: a language-modelling example, no prompt.
 */
export function textExample(tokenizer: TextTokenizer, text: string, cutoffLen: number): TokenizedExample {
  const ids = tokenizeText(tokenizer, text, cutoffLen, false);
  const fullLength = ids.length;
  const eosAppended = ids.length < cutoffLen && ids[ids.length - 1] !== tokenizer.eosId;
  if (eosAppended) ids.push(tokenizer.eosId);
  return { inputIds: ids, labels: [...ids], promptLength: 0, fullLength, eosAppended };
}

/**
 * Trains all weights of `model` on `texts` (AdamW, warm-up then linear decay, gradient norm
 * clipped at 1) and returns the loss of each step. The weights become leaves with gradients
 * for the run and are frozen again at the end.
 */
export async function pretrainBase(model: LlamaModel, tokenizer: TextTokenizer, texts: readonly string[], options: PretrainOptions): Promise<MetricsRow[]> {
  const examples = texts.map((t) => textExample(tokenizer, t, options.cutoffLen));
  // Every step runs the same attention kernels, whatever the compile timing (see train).
  await readyAttention({ headDim: model.config.headDim, dtypes: [model.dtype], backward: true });
  const params = baseParameters(model);
  for (const p of params) p.requireGrad();
  const optimizer = new AdamW(params, { lr: options.learningRate, weightDecay: 0 });
  const history: MetricsRow[] = [];
  const perEpoch = Math.floor(examples.length / options.batchSize);
  try {
    for (let step = 0; step < options.steps; step++) {
      const epoch = Math.floor(step / perEpoch);
      const within = step % perEpoch;
      const order = epochOrder(examples.length, options.seed, epoch).slice(within * options.batchSize, (within + 1) * options.batchSize);
      const warm = (step + 1) / Math.max(1, options.warmupSteps);
      const lr = options.learningRate * Math.min(warm, (options.steps - step) / Math.max(1, options.steps - options.warmupSteps));
      optimizer.setLr(lr);
      const scope = startScope();
      let loss: number;
      try {
        let total: Tensor | null = null;
        for (const chunk of chunkOrder(order, options.microBatchSize)) {
          const b = collate(chunk.map((i) => examples[i]!), { padId: 0, padToMultipleOf: 8, paddingSide: 'left' });
          const shape = [b.batchSize, b.seqLen];
          const l = model.loss(tensor(b.inputIds, shape), tensor(b.labels, shape), tensor(b.attentionMask, shape)).mul(chunk.length / order.length);
          l.backward();
          total = total ? total.add(l) : l;
        }
        clipGradNorm(params, 1);
        optimizer.step();
        optimizer.zeroGrad();
        loss = await total!.item();
      } finally {
        scope.end();
      }
      const row = { step: step + 1, loss, lr };
      history.push(row);
      options.onStep?.(row);
    }
  } finally {
    optimizer.dispose();
    for (const p of params) p.requireGrad(false);
  }
  return history;
}

/** The demonstration base's texts: each record's full training text, its prompt then its answer. */
export function demoBaseTexts(records: readonly QaRecord[], template: PromptTemplate): string[] {
  return records.map((r) => generatePrompt(template, r.instruction, r.input, r.output));
}

/**
 * Trains the tiny demonstration base (every weight) on the full texts of `records` with
 * {@link pretrainBase}: a stand-in, at a toy scale, for what LLaMA's pretraining already knows.
 */
export function pretrainDemoBase(base: BaseModel, records: readonly QaRecord[], template: PromptTemplate, options: PretrainOptions): Promise<MetricsRow[]> {
  return pretrainBase(base.model, textTokenizer(base.tokenizer), demoBaseTexts(records, template), options);
}
