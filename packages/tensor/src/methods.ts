// Method forms of the ops on Tensor (x.add(y), x.matmul(w), loss.backward(), ...), so user code
// reads like PyTorch. Each method calls the function of the same name.
import { backward, type BackwardOptions } from './autograd.js';
import { item, toArray } from './io.js';
import { add, div, mul, neg, sub } from './ops/arithmetic.js';
import { matmul } from './ops/matmul.js';
import { argmax, max, mean, sum } from './ops/reduce.js';
import { cast, where } from './ops/select.js';
import { exp, log, pow, relu, rsqrt, silu, sqrt } from './ops/unary.js';
import { cat, contiguous, expand, permute, reshape, slice, transpose } from './ops/views.js';
import { Tensor, type DType, type HostArray } from './tensor.js';

type Operand = Tensor | number;
type Axes = number | readonly number[];

declare module './tensor.js' {
  interface Tensor {
    add(other: Operand): Tensor;
    sub(other: Operand): Tensor;
    mul(other: Operand): Tensor;
    div(other: Operand): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    pow(p: number): Tensor;
    silu(): Tensor;
    relu(): Tensor;
    sum(axis?: Axes, keepdim?: boolean): Tensor;
    mean(axis?: Axes, keepdim?: boolean): Tensor;
    max(axis: number, keepdim?: boolean): Tensor;
    argmax(axis: number, keepdim?: boolean): Tensor;
    matmul(other: Tensor): Tensor;
    reshape(shape: readonly number[]): Tensor;
    permute(order: readonly number[]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    slice(axis: number, start: number, end?: number): Tensor;
    expand(shape: readonly number[]): Tensor;
    contiguous(): Tensor;
    to(dtype: DType): Tensor;
    where(cond: Tensor, other: Tensor | number): Tensor;
    backward(grad?: Tensor, options?: BackwardOptions): void;
    toArray(): Promise<HostArray<this['dtype']>>;
    item(): Promise<number>;
  }
}

const p = Tensor.prototype;
p.add = function (o) { return add(this, o); };
p.sub = function (o) { return sub(this, o); };
p.mul = function (o) { return mul(this, o); };
p.div = function (o) { return div(this, o); };
p.neg = function () { return neg(this); };
p.exp = function () { return exp(this); };
p.log = function () { return log(this); };
p.sqrt = function () { return sqrt(this); };
p.rsqrt = function () { return rsqrt(this); };
p.pow = function (e) { return pow(this, e); };
p.silu = function () { return silu(this); };
p.relu = function () { return relu(this); };
p.sum = function (axis, keepdim) { return sum(this, axis, keepdim); };
p.mean = function (axis, keepdim) { return mean(this, axis, keepdim); };
p.max = function (axis, keepdim) { return max(this, axis, keepdim); };
p.argmax = function (axis, keepdim) { return argmax(this, axis, keepdim); };
p.matmul = function (o) { return matmul(this, o); };
p.reshape = function (shape) { return reshape(this, shape); };
p.permute = function (order) { return permute(this, order); };
p.transpose = function (d0, d1) { return transpose(this, d0, d1); };
p.slice = function (axis, start, end) { return slice(this, axis, start, end); };
p.expand = function (shape) { return expand(this, shape); };
p.contiguous = function () { return contiguous(this); };
p.to = function (dtype) { return cast(this, dtype); };
p.where = function (cond, other) { return where(cond, this, other); };
p.backward = function (grad, options) { backward(this, grad, options); };
p.toArray = function () { return toArray(this) as never; };
p.item = function () { return item(this); };

export { cat };
