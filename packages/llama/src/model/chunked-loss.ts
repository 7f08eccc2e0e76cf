// lm_head and cross-entropy fused over chunks of rows: the forward keeps only the loss, the backward
// recomputes each chunk's logits, so no more than one chunk of [rows, V] logits ever exists (training
// and evaluation at LLaMA's 32000-word vocabulary stay far under the binding limit).

import { add, cast, cat, crossEntropy, defineOp, matmul, mul, noGrad, slice, tensor, tidy, transpose, type OpContext, type Tensor } from '@huatuo/tensor';
import { opContext } from '@huatuo/tensor/internal';
import { ModelError } from '../errors.js';

/** Bytes of f32 logits one chunk may hold. */
const CHUNK_BYTES = 32 * 1024 * 1024;

/** Rows per chunk for a vocabulary of V: 32 MiB of f32 logits (256 rows at V = 32000). */
export function lossChunkRows(V: number): number {
  return Math.max(1, Math.floor(CHUNK_BYTES / (V * 4)));
}

/** f32 logits [n, V] of hidden rows [n, C] through lm_head parts [rows_i, C]. */
function chunkLogits(h: Tensor, parts: readonly Tensor[]): Tensor {
  const outs = parts.map((w) => matmul(h, transpose(w)));
  const logits = outs.length === 1 ? outs[0]! : cat(outs, -1);
  return logits.dtype === 'f32' ? logits : cast(logits, 'f32');
}

/** A context for running crossEntropy's forward and backward directly on one chunk. */
function ceContext(inputs: Tensor[]): Parameters<typeof crossEntropy.def.forward>[0] {
  return opContext(inputs, () => true);
}

interface Options {
  readonly count: number;
  readonly chunkRows: number;
  readonly ignoreIndex: number;
}

/**
 * Mean cross-entropy of lm_head(hidden) against targets, over the `count` targets that are not
 * ignoreIndex (as torch's mean reduction; NaN when none count). hidden [N, C], lm_head `parts` [rows_i, C]
 * (gradients only for parts that require them), targets i32 [N]. Logits are computed `chunkRows` rows at a time.
 */
const chunkedLmHeadLoss = defineOp({
  name: 'chunkedLmHeadLoss',
  forward(ctx: OpContext<Tensor[], { options: Options; parts: number }>, hidden: Tensor, parts: Tensor[], targets: Tensor, options: Options) {
    const N = hidden.shape[0]!;
    let total: Tensor | null = null;
    for (let s = 0; s < N; s += options.chunkRows) {
      const e = Math.min(N, s + options.chunkRows);
      const prev: Tensor | null = total;
      total = tidy(() => {
        const part = crossEntropy(chunkLogits(slice(hidden, 0, s, e), parts), slice(targets, 0, s, e), { ignoreIndex: options.ignoreIndex, reduction: 'sum' });
        return prev === null ? part : add(prev, part);
      });
      prev?.dispose();
    }
    ctx.saved.push(hidden, ...parts, targets);
    ctx.data = { options, parts: parts.length };
    return mul(total ?? tensor(0), 1 / options.count);
  },
  // dlogits[chunk] = (softmax(logits) - onehot(t)) * g / count, logits recomputed per chunk;
  // dhidden[chunk] = dlogits W, and dW_i = sum over chunks of dlogits[:, rows_i]^T hidden[chunk]
  // for the parts that train (a base trained in full, or an lm_head tied to the embedding).
  backward(ctx, g) {
    const { options, parts: P } = ctx.data;
    const hidden = ctx.saved[0]!;
    const parts = ctx.saved.slice(1, 1 + P);
    const targets = ctx.saved[1 + P]!;
    const wantW = parts.map((_, i) => ctx.needsGrad(1 + i));
    const N = hidden.shape[0]!;
    const chunks: Tensor[] = [];
    let dW: (Tensor | null)[] = parts.map(() => null);
    noGrad(() => {
      const scale = mul(g, 1 / options.count);
      for (let s = 0; s < N; s += options.chunkRows) {
        const e = Math.min(N, s + options.chunkRows);
        const previous = dW;
        const [dh, ...next] = tidy(() => {
          const h = slice(hidden, 0, s, e); // [n, C]
          const logits = chunkLogits(h, parts); // [n, V] f32
          const t = slice(targets, 0, s, e);
          const ce = ceContext([logits, t]);
          crossEntropy.def.forward(ce, logits, t, { ignoreIndex: options.ignoreIndex, reduction: 'sum' });
          const dlogits = crossEntropy.def.backward(ce, scale)[0]!; // [n, V] f32
          const d = dlogits.dtype === hidden.dtype ? dlogits : cast(dlogits, hidden.dtype);
          let start = 0;
          let dh: Tensor | null = null;
          const grads = parts.map((w, i) => {
            const rows = w.shape[0]!;
            const dPart = slice(d, 1, start, start + rows); // [n, rows_i]
            start += rows;
            const term = matmul(dPart, w); // [n, C]
            dh = dh === null ? term : add(dh, term);
            if (!wantW[i]) return null;
            const gw = matmul(transpose(dPart), h); // [rows_i, C]
            return previous[i] ? add(previous[i]!, gw) : gw;
          });
          return [dh!, ...grads] as const;
        });
        for (const old of previous) old?.dispose();
        dW = next as (Tensor | null)[];
        chunks.push(dh as Tensor);
      }
    });
    const dhidden = chunks.length === 1 ? chunks[0]! : cat(chunks, 0);
    return [dhidden, ...dW, null];
  },
});

/**
 * The mean next-token loss of hidden rows [N, C] against targets [N] (host-created i32, -100 ignored),
 * through lm_head parts, `chunkRows` rows of logits at a time (default {@link lossChunkRows}).
 */
export function lmHeadLoss(hidden: Tensor, parts: readonly Tensor[], targets: Tensor, chunkRows?: number): Tensor {
  const host = targets.hostIndices();
  if (host === null) throw new ModelError('internal: lmHeadLoss needs targets created from host data');
  let count = 0;
  for (const t of host) if (t !== -100) count++;
  const V = parts.reduce((s, p) => s + p.shape[0]!, 0);
  return chunkedLmHeadLoss(hidden, [...parts], targets, { count, chunkRows: chunkRows ?? lossChunkRows(V), ignoreIndex: -100 });
}
