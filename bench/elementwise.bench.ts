// Bandwidth rows of the elementwise, select, cast, reduction, view-copy and fill kernels on a LLaMA-sized
// activation x [256, 4096] f32, against their minimal traffic (each input read once, each output
// written once); forward+backward rows where the backward runs kernels of its own.
import {
  add,
  backward,
  cast,
  contiguous,
  div,
  exp,
  full,
  hasF16,
  log,
  maskedFill,
  max,
  argmax,
  mean,
  mul,
  neg,
  pow,
  rand,
  randn,
  relu,
  rsqrt,
  silu,
  sqrt,
  sub,
  sum,
  tensor,
  transpose,
  where,
  type Tensor,
} from '@huatuo/tensor';
import { bandwidthRow, freeGrads } from './bandwidth.js';
import type { BenchContext } from './kernels.bench.js';
import { readFew } from './matmul.bench.js';

const [R, C] = [256, 4096];
const shape = `${R}x${C}`;

/** Runs `f`, waits for a few values of its result and disposes it. */
const once = (f: () => Tensor) => async () => {
  const y = f();
  await readFew(y);
  y.dispose();
};

/** Runs `f`, backpropagates `dy`, waits for `x`'s gradient and frees it. */
const withBackward = (f: () => Tensor, dy: Tensor, x: Tensor) => async () => {
  const y = f();
  backward(y, dy);
  await readFew(x.grad!);
  y.dispose();
  freeGrads(x);
};

/**
 * add, sub, mul, div, neg, exp, log, sqrt, rsqrt, pow, silu, relu, where, maskedFill, cast, sum,
 * mean, max, argmax, transpose+contiguous and fill rows on [256, 4096] f32. n below is one f32 tensor
 * of that shape (4 MiB).
 */
export async function benchElementwise(ctx: BenchContext): Promise<void> {
  const n = R * C * 4;
  const a = randn([R, C], { seed: 11 }).requireGrad();
  const b = randn([R, C], { seed: 12 });
  // rand in [0, 1) shifted to [0.5, 1.5): positive for log, sqrt, rsqrt and a well-scaled divisor.
  const u = rand([R, C], { seed: 13 });
  const pos = add(u, 0.5);
  u.dispose();
  const bias = randn([C], { seed: 14 }).requireGrad();
  const dy = randn([R, C], { seed: 15 });
  const dyRows = full([R], 1);
  const m = new Int32Array(R * C);
  for (let i = 0; i < m.length; i++) m[i] = (i * 2654435761) % 7 === 0 ? 1 : 0;
  const mask = tensor(m, [R, C], { dtype: 'i32' });

  const binary: [string, (x: Tensor, y: Tensor) => Tensor][] = [['add', add], ['sub', sub], ['mul', mul], ['div', div]];
  for (const [name, f] of binary) {
    await bandwidthRow(ctx, `${name} fwd`, 'huatuo', shape, 3 * n, 'traffic: read a, b, write y', once(() => f(a, pos)));
  }
  // Broadcast bias: the backward sums dy over the rows into dbias (reduce_sum).
  await bandwidthRow(ctx, 'add bias fwd+bwd', 'huatuo', `${shape} + ${C}`, 3 * n, 'traffic: fwd read x, write y; bwd read dy (bias and dbias are C floats)', withBackward(() => add(pos, bias), dy, bias));

  const unary: [string, (x: Tensor) => Tensor][] = [
    ['neg', neg], ['exp', exp], ['log', log], ['sqrt', sqrt], ['rsqrt', rsqrt], ['pow', (x) => pow(x, 3)], ['silu', silu], ['relu', relu],
  ];
  for (const [name, f] of unary) {
    await bandwidthRow(ctx, `${name} fwd`, 'huatuo', shape, 2 * n, 'traffic: read x, write y', once(() => f(pos)));
  }
  await bandwidthRow(ctx, 'silu fwd+bwd', 'huatuo', shape, 5 * n, 'traffic: fwd read x, write y; bwd read x, dy, write dx', withBackward(() => silu(a), dy, a));

  await bandwidthRow(ctx, 'where fwd', 'huatuo', shape, 4 * n, 'traffic: read i32 cond, a, b, write y', once(() => where(mask, a, b)));
  await bandwidthRow(ctx, 'maskedFill fwd', 'huatuo', shape, 3 * n, 'traffic: read i32 mask, x, write y', once(() => maskedFill(a, mask, -1e30)));
  if (hasF16()) await bandwidthRow(ctx, 'cast f32->f16', 'huatuo', shape, 1.5 * n, 'traffic: read f32 x, write f16 y', once(() => cast(a, 'f16')));
  await bandwidthRow(ctx, 'cast f32->i32', 'huatuo', shape, 2 * n, 'traffic: read f32 x, write i32 y', once(() => cast(a, 'i32')));

  // Reductions over the last axis ([256, 4096] -> [256]) and over the rows ([256, 4096] -> [4096]).
  await bandwidthRow(ctx, 'sum last fwd', 'huatuo', shape, n, 'traffic: read x (the output is R floats)', once(() => sum(a, -1)));
  await bandwidthRow(ctx, 'sum rows fwd', 'huatuo', shape, n, 'traffic: read x (the output is C floats)', once(() => sum(a, 0)));
  await bandwidthRow(ctx, 'mean fwd+bwd', 'huatuo', shape, 2 * n, 'traffic: fwd read x; bwd write dx (dy is R floats)', withBackward(() => mean(a, -1), dyRows, a));
  await bandwidthRow(ctx, 'max fwd', 'huatuo', shape, n, 'traffic: read x (values and indices are R each)', once(() => max(a, -1)));
  await bandwidthRow(ctx, 'max fwd+bwd', 'huatuo', shape, 2 * n, 'traffic: fwd read x; bwd write dx (dy, indices are R each)', withBackward(() => max(a, -1), dyRows, a));
  await bandwidthRow(ctx, 'argmax fwd', 'huatuo', shape, n, 'traffic: read x (the output is R i32)', once(() => argmax(a, -1)));

  await bandwidthRow(ctx, 'transpose copy', 'huatuo', `${shape} -> ${C}x${R}`, 2 * n, 'traffic: read x, write the transposed copy (copy_strided)', once(() => contiguous(transpose(a, 0, 1))));
  await bandwidthRow(ctx, 'fill', 'huatuo', shape, n, 'traffic: write y', once(() => full([R, C], 0.5)));

  for (const t of [a, b, pos, bias, dy, dyRows, mask]) t.dispose();
}
