// Random-access byte sources: the only way the safetensors reader touches a file,
// so a multi-gigabyte shard is read tensor by tensor, never whole. Browser-safe.

/**
 * Random-access read-only bytes of known size: a file on disk, a browser `File`/`Blob`,
 * or an in-memory buffer.
 */
export interface ByteSource {
  /** The file's path or name, used in error messages. */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes starting at `offset`. The result may be shorter only when
   * the range runs past the end of the source.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the underlying handle, if any. */
  close?(): Promise<void>;
}

/**
 * A byte source over a browser `File` or `Blob`, reading only the requested slice.
 *
 * @example
 * const file = input.files[0];
 * const st = await SafetensorsFile.open(blobSource(file));
 */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const fileName = name ?? (typeof (blob as { name?: unknown }).name === 'string' ? (blob as File).name : 'blob');
  return {
    name: fileName,
    size: blob.size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const end = Math.min(offset + length, blob.size);
      if (offset >= end) return new Uint8Array(0);
      return new Uint8Array(await blob.slice(offset, end).arrayBuffer());
    },
  };
}

/**
 * A byte source over bytes already in memory (small files, tests). Reads return copies,
 * so callers may keep or modify them freely.
 */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const end = Math.min(offset + length, bytes.byteLength);
      if (offset >= end) return new Uint8Array(0);
      return bytes.slice(offset, end);
    },
  };
}
