// Reading the PyTorch reference fixtures of test/fixtures/llama (see its README), and the model runs the tests
// compare with them: logits of a batch, logits decoded through the KV cache, a loss with its gradients.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, cat, clipGradNorm, noGrad, setFusedLinearPreferred, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { KvCache, generate, openSafetensors, peftKey, type DecoderLayer, type Linear, type LlamaModel, type LoraTargetModule } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';

/** Logits and loss agree with the reference to 1e-4 (relative, with the same absolute floor). */
const tol = { atol: 1e-4, rtol: 1e-4 };

export const fixtureRoot = fileURLToPath(new URL('../fixtures/llama/', import.meta.url));

export interface LogitsRecord {
  logits: number[];
  logitColumns?: number;
  logsumexp?: number[];
  loss: number;
}

export interface Reference extends LogitsRecord {
  ids: number[][];
  attentionMask: number[][];
  labels: number[][];
  lora: LogitsRecord & { grads: Record<string, number[]> };
  generation: null | {
    eosTokenId: number;
    prompts: number[][];
    maxNewTokens: number;
    greedy: number[][];
    repetitionPenalty: number;
    greedyRepetitionPenalty: number[][];
    numBeams: number;
    beamMaxNewTokens: number;
    beam: number[][];
  };
}

export const fixtureNames = ['gqa', 'tied-odd', 'vocab32k'] as const;

export function fixtureDir(name: string): string {
  return join(fixtureRoot, name);
}

export function readReference(name: string): Reference {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'reference.json'), 'utf8')) as Reference;
}

/** Checks logits [B, T, V] against a record (all columns, or leading columns plus logsumexp). */
export async function checkLogits(logits: Tensor, rec: LogitsRecord, what: string): Promise<void> {
  const V = logits.shape[2]!;
  const got = await toArray(logits);
  if (rec.logitColumns === undefined) {
    assertClose(got, rec.logits, tol, what);
    return;
  }
  const n = rec.logitColumns;
  const rows = got.length / V;
  const cols = new Float64Array(rows * n);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, got[r * V + j]!);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(got[r * V + j]! - m);
    lse[r] = m + Math.log(s);
    for (let j = 0; j < n; j++) cols[r * n + j] = got[r * V + j]!;
  }
  assertClose(cols, rec.logits, tol, `${what} (first ${n} columns)`);
  assertClose(lse, rec.logsumexp!, tol, `${what} (logsumexp over the vocabulary)`);
}

/** Rows of token ids (or of a 0/1 mask), all of one length, as an i32 tensor [B, T]. */
export function ids2d(rows: number[][]): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
}

/** A batch as the fixtures record it: token ids, and the padding mask where there is one. */
export interface Batch {
  ids: number[][];
  attentionMask?: number[][];
}

/** A batch with the labels of its loss. */
export interface LabelledBatch {
  ids: number[][];
  attentionMask: number[][];
  labels: number[][];
}

/** Logits [B, T, V] and loss of the fixture's batch, without gradients. */
export function referenceForward(model: LlamaModel, ref: Reference): { logits: Tensor; loss: Tensor } {
  return noGrad(() =>
    tidy(() => {
      const [ids, mask] = [ids2d(ref.ids), ids2d(ref.attentionMask)];
      return { logits: model.forward(ids, { attentionMask: mask }), loss: model.loss(ids, ids2d(ref.labels), mask) };
    }),
  );
}

/** Logits [B, T, V] of `batch` without gradients, copied to the host. */
export async function logitsOf(model: LlamaModel, batch: Batch): Promise<Float32Array> {
  const t = noGrad(() => tidy(() => model.forward(ids2d(batch.ids), { attentionMask: batch.attentionMask ? ids2d(batch.attentionMask) : null })));
  const out = (await toArray(t)) as Float32Array;
  t.dispose();
  return out;
}

/**
 * Logits [B, T, V] of `rows` decoded through an f32 KV cache, the first `prefill` tokens in one step and then one token
 * at a time, copied to the host; with `fused` given, the fused decode products are preferred (true) or not used (false).
 */
export async function decodedLogits(model: LlamaModel, rows: number[][], prefill: number, fused?: boolean): Promise<Float32Array> {
  const T = rows[0]!.length;
  const ids = (from: number, to: number) => ids2d(rows.map((r) => r.slice(from, to)));
  const cache = new KvCache(model.config, rows.length, T, 'f32');
  if (fused !== undefined) setFusedLinearPreferred(fused);
  try {
    const steps = noGrad(() => [
      tidy(() => model.forward(ids(0, prefill), { cache })),
      ...Array.from({ length: T - prefill }, (_, i) => tidy(() => model.forward(ids(prefill + i, prefill + i + 1), { cache }))),
    ]);
    const all = tidy(() => cat(steps, 1));
    for (const s of steps) s.dispose();
    const out = (await toArray(all)) as Float32Array;
    all.dispose();
    return out;
  } finally {
    if (fused !== undefined) setFusedLinearPreferred(null);
    cache.dispose();
  }
}

/** The loss of `batch` after its backward pass, which leaves the gradients on the trained tensors. */
export function lossWithGradients(model: LlamaModel, batch: LabelledBatch): Tensor {
  return tidy(() => {
    const loss = model.loss(ids2d(batch.ids), ids2d(batch.labels), ids2d(batch.attentionMask));
    loss.backward();
    return loss;
  });
}

/**
 * Training steps on `batch` as the Hugging Face Trainer takes them: loss, backward, global-norm clipping to
 * `maxGradNorm`, AdamW (betas 0.9/0.999, eps 1e-8, no weight decay) over the model's LoRA parameters. Returns the
 * loss of each step, then the loss after the last one.
 */
export async function adamWSteps(model: LlamaModel, batch: LabelledBatch, run: { steps: number; lr: number; maxGradNorm: number }): Promise<number[]> {
  const params = model.loraParameters();
  const opt = new AdamW(params, { lr: run.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const lossOf = () => model.loss(ids2d(batch.ids), ids2d(batch.labels), ids2d(batch.attentionMask));
  const losses: number[] = [];
  for (let s = 0; s < run.steps; s++) {
    const loss = tidy(() => {
      const l = lossOf();
      l.backward();
      clipGradNorm(params, run.maxGradNorm).dispose();
      return l;
    });
    losses.push((await toArray(loss))[0]!);
    loss.dispose();
    opt.step();
    opt.zeroGrad();
  }
  const final = tidy(() => lossOf());
  losses.push((await toArray(final))[0]!);
  final.dispose();
  opt.dispose();
  return losses;
}

/**
 * With the fixture's adapter loaded on `model`: the adapted logits and loss of the fixture's batch against `ref.lora`,
 * then the gradients of A and B of the `projections` of each layer, which must be all that `ref.lora.grads` holds.
 */
export async function checkAdapted(model: LlamaModel, ref: Reference, name: string, projections: (layer: DecoderLayer) => [LoraTargetModule, Linear][]): Promise<void> {
  const { logits, loss } = tidy(() => {
    const [ids, mask] = [ids2d(ref.ids), ids2d(ref.attentionMask)];
    const loss = model.loss(ids, ids2d(ref.labels), mask);
    loss.backward();
    return { loss, logits: noGrad(() => model.forward(ids, { attentionMask: mask })) };
  });
  await checkLogits(logits, ref.lora, `${name} adapted logits`);
  assertClose([(await toArray(loss))[0]!], [ref.lora.loss], tol, `${name} adapted loss`);
  let checked = 0;
  for (const layer of model.layers) {
    for (const [target, linear] of projections(layer)) {
      for (const m of ['A', 'B'] as const) {
        const key = peftKey(layer.index, target, m);
        assertClose(await toArray(linear.lora![m].grad!), ref.lora.grads[key]!, { atol: 1e-5, rtol: 1e-3 }, `gradient of ${key}`);
        checked++;
      }
    }
  }
  assert.equal(checked, Object.keys(ref.lora.grads).length);
  logits.dispose();
  loss.dispose();
}

/** Greedy decoding and beam search of the fixture's prompts give the reference ids. */
export async function checkGeneration(model: LlamaModel, ref: Reference): Promise<void> {
  const g = ref.generation!;
  const greedy = await generate(model, null, g.prompts, { maxNewTokens: g.maxNewTokens });
  assert.deepEqual(greedy.map((o) => o.tokens), g.greedy);
  const beam = await generate(model, null, g.prompts, { maxNewTokens: g.beamMaxNewTokens, numBeams: g.numBeams });
  assert.deepEqual(beam.map((o) => o.tokens), g.beam);
}

/** "name RxC" of every tensor of a safetensors file, sorted. */
export async function safetensorKeys(path: string): Promise<string[]> {
  const st = await openSafetensors(path);
  try {
    return st.tensors.map((t) => `${t.name} ${t.shape.join('x')}`).sort();
  } finally {
    await st.close();
  }
}
