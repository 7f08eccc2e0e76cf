// One interface over the checkpoint file formats (safetensors, PyTorch .bin), and opening a
// byte source as whichever its first bytes show. Browser-safe.

import type { HostFloatArray, HostFloatDType } from './safetensors.js';
import { SafetensorsFile } from './safetensors.js';
import type { TensorInfo } from './safetensors-header.js';
import type { ByteSource } from './source.js';
import { TorchBinFile, isPickleMagic, isZipMagic, magicBytes } from './torch-bin.js';

/** A checkpoint file opened for streaming reads, tensor by tensor: {@link SafetensorsFile} or {@link TorchBinFile}. */
export interface TensorFile {
  /** The file's path or name, as used in error messages. */
  readonly name: string;
  /** Every tensor, in file order. */
  readonly tensors: readonly TensorInfo[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** One tensor's bytes, row-major, little-endian. */
  read(name: string): Promise<Uint8Array>;
  /** One F32, F16 or BF16 tensor as f32 values or f16 bit patterns. */
  readAs<T extends HostFloatDType>(name: string, target: T, options?: { allowNonFinite?: boolean }): Promise<HostFloatArray<T>>;
  close(): Promise<void>;
}

/**
 * Opens `source` as a PyTorch `.bin` when it starts as a zip archive or a legacy torch.save pickle (refused
 * with a clear error), else as safetensors.
 *
 * @example
 * const f = await openTensorFile(blobSource(picked));
 * for (const t of f.tensors) console.log(t.name, t.dtype, t.shape);
 */
export async function openTensorFile(source: ByteSource): Promise<TensorFile> {
  const head = await source.read(0, magicBytes);
  if (isZipMagic(head) || isPickleMagic(head)) return TorchBinFile.open(source);
  return SafetensorsFile.open(source);
}
