// The CPU reference's array type and shared helpers: plain row-major Float64Array data, written
// from the math so the GPU kernels can be checked against it.

/** A dense row-major array in float64. */
export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

export function refNumel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function refTensor(data: ArrayLike<number>, shape: readonly number[]): RefTensor {
  if (data.length !== refNumel(shape)) throw new Error(`reference: ${data.length} values for shape [${shape.join(', ')}]`);
  return { shape: [...shape], data: Float64Array.from(data) };
}

export function refZeros(shape: readonly number[]): RefTensor {
  return { shape: [...shape], data: new Float64Array(refNumel(shape)) };
}

export function refStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Multi-index of flat index i in shape. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}
