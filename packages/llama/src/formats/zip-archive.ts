// A minimal ZIP reader over a ByteSource: the central directory (ZIP64 included) and stored
// entries, as torch.save writes them; entry data is located, never read whole. Browser-safe.

import { TorchCheckpointError } from '../errors.js';
import type { ByteSource } from './source.js';

/** One entry of the central directory. */
export interface ZipEntry {
  readonly name: string;
  /** Compression method: 0 is stored, 8 deflated. */
  readonly method: number;
  /** General-purpose flags (bit 0: encrypted). */
  readonly flags: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the entry's local header. */
  readonly localOffset: number;
}

const eocdSignature = 0x06054b50;
const zip64LocatorSignature = 0x07064b50;
const zip64EocdSignature = 0x06064b50;
const centralSignature = 0x02014b50;
const localSignature = 0x04034b50;
const eocdSize = 22;
const maxCommentBytes = 0xffff;
const u16Max = 0xffff;
const u32Max = 0xffffffff;

/**
 * Largest central directory read (64 MiB): torch.save writes some 100 bytes per entry, one entry per storage, so a
 * real one is a few megabytes at most, while one as large as a multi-gigabyte file would be read whole and make an
 * object per 46 bytes.
 */
const maxCentralDirectoryBytes = 64 * 2 ** 20;

const utf8 = new TextDecoder('utf-8');

function u64(dv: DataView, at: number, file: string, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchCheckpointError(file, undefined, `the zip's ${what} is ${v}, beyond any real file; the archive is corrupt`);
  return Number(v);
}

/** Where the end-of-central-directory record starts in `tail` (the file's last bytes), or -1. */
function findEocd(tail: Uint8Array): number {
  const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  for (let i = tail.byteLength - eocdSize; i >= 0; i--) {
    if (dv.getUint32(i, true) === eocdSignature && i + eocdSize + dv.getUint16(i + 20, true) <= tail.byteLength) return i;
  }
  return -1;
}

/**
 * A ZIP archive opened from its central directory (two or three small reads).
 *
 * @example
 * const zip = await ZipArchive.open(bytesSource('model.bin', bytes));
 * const pkl = await zip.readStored(zip.entry('archive/data.pkl')!);
 */
export class ZipArchive {
  readonly source: ByteSource;
  /** Entries in central-directory order. */
  readonly entries: readonly ZipEntry[];
  private readonly byName: ReadonlyMap<string, ZipEntry>;

  private constructor(source: ByteSource, entries: ZipEntry[]) {
    this.source = source;
    this.entries = entries;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  /** Reads the end-of-central-directory record (and its ZIP64 form) and the central directory. */
  static async open(source: ByteSource): Promise<ZipArchive> {
    const file = source.name;
    const corrupt = (what: string) => new TorchCheckpointError(file, undefined, `${what}; the zip archive is truncated or corrupt: download or save it again`);
    if (source.size < eocdSize) throw corrupt(`the file has only ${source.size} bytes`);
    // torch writes no archive comment, so the record is in the last 22 bytes; a comment may push it back up to 64 KiB.
    let tail: Uint8Array = new Uint8Array(0);
    let eocd = -1;
    for (const window of [Math.min(source.size, 4096), Math.min(source.size, eocdSize + maxCommentBytes)]) {
      if (window <= tail.byteLength) break;
      tail = await readExactly(source, source.size - window, window, 'the end of the archive');
      eocd = findEocd(tail);
      // The ZIP64 locator, when there is one, lies in the 20 bytes before the record.
      if (eocd >= 20 || (eocd >= 0 && window === source.size)) break;
    }
    if (eocd < 0) throw corrupt('no end-of-central-directory record');
    const tdv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let count = tdv.getUint16(eocd + 10, true);
    let cdSize = tdv.getUint32(eocd + 12, true);
    let cdOffset = tdv.getUint32(eocd + 16, true);
    const locator = eocd - 20;
    if (locator >= 0 && tdv.getUint32(locator, true) === zip64LocatorSignature) {
      const at = u64(tdv, locator + 8, file, 'ZIP64 record offset');
      const rec = await readExactly(source, at, 56, 'the ZIP64 end-of-central-directory record');
      const rdv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
      if (rdv.getUint32(0, true) !== zip64EocdSignature) throw corrupt(`no ZIP64 end-of-central-directory record at offset ${at}`);
      count = u64(rdv, 32, file, 'entry count');
      cdSize = u64(rdv, 40, file, 'central directory size');
      cdOffset = u64(rdv, 48, file, 'central directory offset');
    } else if (count === u16Max || cdSize === u32Max || cdOffset === u32Max) {
      throw corrupt('the end record points to a ZIP64 record that is missing');
    }
    if (cdOffset + cdSize > source.size) throw corrupt(`the central directory (${cdSize} bytes at offset ${cdOffset}) runs past the end of the ${source.size}-byte file`);
    if (cdSize > maxCentralDirectoryBytes) {
      throw new TorchCheckpointError(file, undefined, `the zip's central directory has ${cdSize} bytes, more than the ${maxCentralDirectoryBytes} a torch.save checkpoint's list of entries ever needs; refused: it is not a PyTorch checkpoint`);
    }
    const cd = await readExactly(source, cdOffset, cdSize, 'the central directory');
    const dv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.byteLength || dv.getUint32(p, true) !== centralSignature) throw corrupt(`central directory entry ${i} is malformed`);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      if (p + 46 + nameLen + extraLen + commentLen > cd.byteLength) throw corrupt(`central directory entry ${i} runs past the directory`);
      const name = utf8.decode(cd.subarray(p + 46, p + 46 + nameLen));
      let size = dv.getUint32(p + 24, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let localOffset = dv.getUint32(p + 42, true);
      // ZIP64 extended information: present fields follow in this order, each only when its 32-bit field is saturated.
      for (let e = p + 46 + nameLen, end = e + extraLen; e + 4 <= end; ) {
        const id = dv.getUint16(e, true);
        const len = dv.getUint16(e + 2, true);
        if (e + 4 + len > end) throw corrupt(`entry ${name}'s extra field ${id} runs past its extra data`);
        if (id === 1) {
          let f = e + 4;
          const next = (what: string) => {
            if (f + 8 > e + 4 + len) throw corrupt(`entry ${name}'s ZIP64 field lacks the ${what}`);
            const v = u64(dv, f, file, `${name}'s ${what}`);
            f += 8;
            return v;
          };
          if (size === u32Max) size = next('size');
          if (compressedSize === u32Max) compressedSize = next('compressed size');
          if (localOffset === u32Max) localOffset = next('local header offset');
        }
        e += 4 + len;
      }
      if (size === u32Max || compressedSize === u32Max || localOffset === u32Max) throw corrupt(`entry ${name} lacks its ZIP64 sizes`);
      entries.push({ name, method: dv.getUint16(p + 10, true), flags: dv.getUint16(p + 8, true), compressedSize, size, localOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return new ZipArchive(source, entries);
  }

  /** The entry called `name`, or undefined. */
  entry(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /**
   * Where a stored entry's data lies in the file (one small read of its local header). Compressed or
   * encrypted entries, and data running past the end of the file, are refused.
   */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const file = this.source.name;
    if ((entry.flags & 1) !== 0) throw new TorchCheckpointError(file, undefined, `zip entry ${entry.name} is encrypted; torch.save never encrypts: save the checkpoint again`);
    if (entry.method !== 0 || entry.compressedSize !== entry.size) {
      throw new TorchCheckpointError(
        file,
        undefined,
        `zip entry ${entry.name} is compressed (method ${entry.method}); torch.save stores entries uncompressed so tensors can be read in place: do not re-zip the checkpoint, save it again with torch.save`,
      );
    }
    const header = await readExactly(this.source, entry.localOffset, 30, `the local header of ${entry.name}`);
    const dv = new DataView(header.buffer, header.byteOffset, 30);
    if (dv.getUint32(0, true) !== localSignature) {
      throw new TorchCheckpointError(file, undefined, `no local header for zip entry ${entry.name} at offset ${entry.localOffset}; the zip archive is corrupt: download or save it again`);
    }
    const start = entry.localOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
    if (start + entry.size > this.source.size) {
      throw new TorchCheckpointError(file, undefined, `zip entry ${entry.name} (${entry.size} bytes at offset ${start}) runs past the end of the ${this.source.size}-byte file; it is truncated: download or save it again`);
    }
    return start;
  }

  /** Reads a whole stored entry (for small entries such as `data.pkl`). */
  async readStored(entry: ZipEntry): Promise<Uint8Array> {
    return readExactly(this.source, await this.dataOffset(entry), entry.size, `zip entry ${entry.name}`);
  }
}

/** Reads exactly `length` bytes at `offset` or throws TorchCheckpointError naming `what`. */
export async function readExactly(source: ByteSource, offset: number, length: number, what: string, tensor?: string): Promise<Uint8Array> {
  const bytes = await source.read(offset, length);
  if (bytes.byteLength !== length) {
    throw new TorchCheckpointError(source.name, tensor, `${what}: expected ${length} bytes at offset ${offset}, got ${bytes.byteLength}; the file is truncated`);
  }
  return bytes;
}
