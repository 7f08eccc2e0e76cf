// Node only: runs Dawn's first adapter request with file descriptor 2 pointed at a temp file, so that
// the two notices Dawn's native code prints there on every start (it clamps two adapter limits
// to its own maximum) can be dropped; anything else it printed is passed on unchanged.
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Dawn's notice (dawn/native/Limits.cpp) that it lowered a dynamic-buffer limit the driver reported. */
export const DAWN_LIMIT_NOTICE = /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

/** Where an open descriptor can be opened again: Linux's /proc, else /dev/fd (BSD, macOS). */
function fdPath(fd: number): string {
  return process.platform === 'linux' ? `/proc/self/fd/${fd}` : `/dev/fd/${fd}`;
}

/**
 * Whether fd 2 can be swapped out and back without changing what later writes do: a terminal or
 * a pipe, or a file that stdout does not share (reopening a shared file would give stderr its own
 * offset and let stdout overwrite its lines). Needs fds 0 and 1 open, so that a freed 2 is reused.
 */
function canSwapStderr(): boolean {
  if (process.platform === 'win32') return false;
  try {
    fstatSync(0);
    const out = fstatSync(1);
    const err = fstatSync(2);
    if (err.isCharacterDevice() || err.isFIFO()) return true;
    return err.isFile() && !(out.dev === err.dev && out.ino === err.ino);
  } catch {
    return false;
  }
}

/**
 * Runs `request` with native writes to stderr captured, then writes back every captured line
 * except Dawn's limit notices (all of them when `showNotices`). Where stderr cannot be swapped
 * safely (a socket, a file shared with stdout, Windows) it runs `request` untouched.
 */
export async function withoutDawnNotices<T>(request: () => Promise<T>, showNotices: boolean): Promise<T> {
  if (showNotices || !canSwapStderr()) return request();
  let saved: number;
  try {
    saved = openSync(fdPath(2), 'a');
  } catch {
    return request();
  }
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-dawn-'));
  const file = join(dir, 'stderr.txt');
  closeSync(2);
  let swapped = false;
  try {
    const fd = openSync(file, 'w+');
    if (fd === 2) swapped = true;
    else closeSync(fd);
  } catch {
    // fd 2 stays free and is restored below.
  }
  try {
    return await request();
  } finally {
    if (swapped) closeSync(2);
    const restored = openSync(fdPath(saved), 'a');
    closeSync(saved);
    if (restored !== 2) closeSync(restored);
    const captured = swapped ? readFileSync(file, 'utf8') : '';
    rmSync(dir, { recursive: true, force: true });
    const kept = captured.split('\n').filter((line, i, all) => !DAWN_LIMIT_NOTICE.test(line) && !(i === all.length - 1 && line === ''));
    if (kept.length > 0) writeSync(2, `${kept.join('\n')}\n`);
  }
}
