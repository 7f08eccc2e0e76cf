// The globals a PyTorch state dict's data.pkl may name, as torch.load(weights_only=True) admits
// them, and the state dict they build: tensor name -> storage, offset, shape, strides. Browser-safe.

import { TorchCheckpointError } from '../errors.js';
import { PyDict, PyTuple, describePy, unpickle, type PyGlobal, type PyValue } from './pickle.js';
import type { SafetensorsDType } from './safetensors-header.js';

/** One storage of the archive (`data/<key>`), shared by every tensor viewing it. */
export interface TorchStorage {
  readonly key: string;
  readonly dtype: SafetensorsDType;
  /** Elements of `dtype`. */
  readonly numel: number;
}

/** A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage. */
export interface TorchTensorRef {
  readonly storage: TorchStorage;
  /** In elements. */
  readonly storageOffset: number;
  readonly shape: readonly number[];
  /** In elements. */
  readonly stride: readonly number[];
}

/** torch's typed storage classes and the dtypes they hold. */
const storageDTypes: Readonly<Record<string, SafetensorsDType>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

function isTensorRef(v: PyValue): v is { kind: 'opaque'; value: TorchTensorRef } {
  return typeof v === 'object' && v !== null && 'kind' in v && v.kind === 'opaque' && (v.value as { storage?: unknown }).storage !== undefined;
}

/**
 * Interprets a state dict's `data.pkl`: a dict or OrderedDict of tensor names to tensors. Only
 * `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`,
 * `_rebuild_parameter_with_state` and torch's typed storage classes are admitted; any other global is
 * refused by name before anything could be called. `file` names the checkpoint in errors.
 */
export function readStateDictPickle(bytes: Uint8Array, file: string): Map<string, TorchTensorRef> {
  const fail = (what: string) => new TorchCheckpointError(file, undefined, what);
  const storages = new Map<string, TorchStorage>();
  const int = (v: PyValue | undefined, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw fail(`${what} should be a non-negative integer, got ${describePy(v ?? null)}`);
    return v;
  };
  const ints = (v: PyValue | undefined, what: string): number[] => {
    if (!(v instanceof PyTuple)) throw fail(`${what} should be a tuple of integers, got ${describePy(v ?? null)}`);
    return v.items.map((x) => int(x, what));
  };
  const callable = (qualifiedName: string, call: (args: readonly PyValue[]) => PyValue): PyGlobal => ({ kind: 'global', qualifiedName, call });
  const rebuildTensor = (args: readonly PyValue[]): PyValue => {
    const [storage, offset, size, stride] = args;
    if (!(typeof storage === 'object' && storage !== null && 'kind' in storage && storage.kind === 'opaque' && typeof (storage.value as { key?: unknown }).key === 'string')) {
      throw fail(`_rebuild_tensor_v2's storage should be a persistent storage id, got ${describePy(storage ?? null)}`);
    }
    const ref: TorchTensorRef = {
      storage: storage.value as TorchStorage,
      storageOffset: int(offset, '_rebuild_tensor_v2 storage offset'),
      shape: ints(size, '_rebuild_tensor_v2 size'),
      stride: ints(stride, '_rebuild_tensor_v2 stride'),
    };
    if (ref.shape.length !== ref.stride.length) throw fail(`a tensor has shape [${ref.shape.join(', ')}] but strides (${ref.stride.join(', ')})`);
    return { kind: 'opaque', value: ref };
  };
  const rebuildParameter = (args: readonly PyValue[]): PyValue => {
    const data = args[0];
    if (data === undefined || !isTensorRef(data)) throw fail(`_rebuild_parameter's data should be a tensor, got ${describePy(data ?? null)}`);
    return data;
  };
  const allowed: Readonly<Record<string, PyGlobal>> = {
    'collections.OrderedDict': callable('collections.OrderedDict', (args) => {
      if (args.length !== 0) throw fail('collections.OrderedDict is called with arguments; a state dict builds it empty');
      return new PyDict();
    }),
    'torch._utils._rebuild_tensor_v2': callable('torch._utils._rebuild_tensor_v2', rebuildTensor),
    'torch._utils._rebuild_parameter': callable('torch._utils._rebuild_parameter', rebuildParameter),
    'torch._utils._rebuild_parameter_with_state': callable('torch._utils._rebuild_parameter_with_state', rebuildParameter),
  };
  const value = unpickle(bytes, file, {
    findGlobal(module, name) {
      const qualified = `${module}.${name}`;
      const found = allowed[qualified];
      if (found !== undefined) return found;
      if (module === 'torch' && storageDTypes[name] !== undefined) return { kind: 'global', qualifiedName: qualified };
      throw fail(
        `the pickle names the global ${qualified}, which a state dict never needs; refused without running anything ` +
          '(torch.load(weights_only=True) refuses it too). Load only checkpoints from sources you trust, or get the weights as safetensors',
      );
    },
    persistentLoad(pid) {
      const items = pid instanceof PyTuple ? pid.items : [];
      const [tag, type, key, , numel] = items;
      if (items.length !== 5 || tag !== 'storage' || typeof key !== 'string') {
        throw fail(`a persistent id is ${describePy(pid)}; expected ('storage', storage type, key, location, numel)`);
      }
      const typeName = typeof type === 'object' && type !== null && 'kind' in type && type.kind === 'global' ? type.qualifiedName : describePy(type ?? null);
      const dtype = storageDTypes[typeName.replace(/^torch\./, '')];
      if (dtype === undefined || !typeName.startsWith('torch.')) throw fail(`storage ${key} has type ${typeName}, which holds no supported dtype`);
      const storage: TorchStorage = { key, dtype, numel: int(numel, `storage ${key}'s numel`) };
      const seen = storages.get(key);
      if (seen !== undefined && (seen.dtype !== dtype || seen.numel !== storage.numel)) {
        throw fail(`storage ${key} is described as ${seen.dtype} x ${seen.numel} and as ${dtype} x ${storage.numel}`);
      }
      if (seen === undefined) storages.set(key, storage);
      return { kind: 'opaque', value: seen ?? storage };
    },
  });
  if (!(value instanceof PyDict)) {
    throw fail(`data.pkl holds ${describePy(value)}, not a state dict (a dict of tensor names to tensors); save model.state_dict() instead`);
  }
  const out = new Map<string, TorchTensorRef>();
  for (const [name, v] of value.map) {
    if (typeof name !== 'string') throw fail(`a state dict key is ${describePy(name)}, not a tensor name`);
    if (!isTensorRef(v)) {
      throw new TorchCheckpointError(file, name, `is ${describePy(v)}, not a tensor; this file is not a plain state dict (a training checkpoint?): save model.state_dict() alone`);
    }
    out.set(name, v.value);
  }
  return out;
}
