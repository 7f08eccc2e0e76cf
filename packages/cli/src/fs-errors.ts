// Plain words for the file-system errors a run can meet (a full disk, a folder it may not write),
// naming the file from the error and what to do, in place of Node's bare "ENOSPC: ..." line.

/** What Node's file-system errors carry. */
interface SystemError {
  code?: unknown;
  path?: unknown;
  dest?: unknown;
  syscall?: unknown;
}

const ADVICE: Readonly<Record<string, string>> = {
  ENOSPC: 'no space is left on the device; free some space or write somewhere else (e.g. another --output-dir)',
  EDQUOT: 'the disk quota is used up; free some space or write somewhere else (e.g. another --output-dir)',
  EACCES: 'permission denied; choose a location you can write to, or change its permissions',
  EPERM: 'the operation is not permitted there; choose a location you can write to, or change its permissions',
  EROFS: 'the file system is read-only; write somewhere else',
  EMFILE: 'too many files are open; raise the limit (ulimit -n) and run again',
  EISDIR: 'a folder is in the way of a file of that name; remove it or choose another name',
  ENOTDIR: 'part of the path is a file, not a folder; fix the path',
};

/**
 * A sentence for a Node file-system error, or null for other errors: the file, what failed and
 * what to do, e.g. "cannot write out/checkpoint-8/optimizer.safetensors: no space is left ...".
 */
export function describeFileSystemError(e: unknown): string | null {
  const err = e as SystemError | null;
  if (err === null || typeof err !== 'object' || typeof err.code !== 'string') return null;
  const advice = ADVICE[err.code];
  if (advice === undefined) return null;
  const path = typeof err.dest === 'string' && err.syscall === 'rename' ? err.dest : typeof err.path === 'string' ? err.path : null;
  const verb = err.syscall === 'open' || err.syscall === 'read' || err.syscall === 'scandir' ? 'cannot open' : 'cannot write';
  return `${path === null ? 'a file operation failed' : `${verb} ${path}`}: ${advice} (${err.code})`;
}
