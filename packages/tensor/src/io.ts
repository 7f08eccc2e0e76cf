// Reading tensors back to the host. The only place the library waits for the GPU; nothing in an
// op or a step reads back unless the user asks for a value.
import { getRuntime } from './backend/context.js';
import { f16BitsToF32 } from './creation.js';
import { contiguousData } from './ops/launch.js';
import { itemSize, type HostArray, type DType, type Tensor } from './tensor.js';
import { ShapeError, fmtShape } from './errors.js';

/**
 * Copies a tensor's elements to the host in row-major order (f16 widened to f32). The copy is
 * submitted before the promise is returned, so the tensor may be disposed and more work queued
 * before awaiting it: the values are those the tensor held when toArray was called.
 */
export async function toArray<D extends DType>(t: Tensor & { dtype: D }): Promise<HostArray<D>> {
  const rt = getRuntime();
  const c = contiguousData('toArray', t);
  try {
    const bytes = t.size * itemSize[t.dtype];
    if (bytes === 0) return emptyHost(t.dtype) as HostArray<D>;
    const raw = await rt.read(c.buffer('toArray'), c.offset * itemSize[t.dtype], bytes);
    switch (t.dtype) {
      case 'f16':
        return f16BitsToF32(new Uint16Array(raw)) as HostArray<D>;
      case 'i32':
        return new Int32Array(raw) as HostArray<D>;
      case 'u32':
        return new Uint32Array(raw) as HostArray<D>;
      default:
        return new Float32Array(raw) as HostArray<D>;
    }
  } finally {
    if (c !== t) c.dispose('temporary of toArray');
  }
}

/** The value of a one-element tensor. */
export async function item(t: Tensor): Promise<number> {
  if (t.size !== 1) throw new ShapeError(`item: tensor ${fmtShape(t.shape)} has ${t.size} elements, not 1`);
  return (await toArray(t))[0]!;
}

function emptyHost(dtype: DType): Float32Array | Int32Array | Uint32Array {
  return dtype === 'i32' ? new Int32Array(0) : dtype === 'u32' ? new Uint32Array(0) : new Float32Array(0);
}
