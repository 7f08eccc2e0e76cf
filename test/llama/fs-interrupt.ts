// Interrupts a program at its n-th change to the file system: Node's fs/promises functions that change files (open for
// writing, rename, rm, mkdir, ...) are wrapped, and the n-th call kills the process (SIGKILL: nothing after it runs,
// as a crash or power loss) or fails with ENOSPC before it reaches the disk (a full disk). The named imports of
// node:fs/promises in the code under test see the wrapped functions (module.syncBuiltinESMExports).
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const CHANGING = ['open', 'rename', 'rm', 'rmdir', 'unlink', 'mkdir', 'writeFile', 'appendFile', 'copyFile', 'truncate'] as const;
/** The changes a full disk can fail (those that may take space). */
const TAKING_SPACE = new Set<string>(['open', 'rename', 'mkdir', 'writeFile', 'appendFile', 'copyFile']);

/** A wrapped file system: the changes seen so far, and a way to put the functions back. */
export interface FsInterrupt {
  /** Changes made (or attempted) since the wrapping; with 'enospc', those that may take space. */
  readonly changes: number;
  restore(): void;
}

/** Whether an fs open flag writes (w, a, x, +; or the O_WRONLY / O_RDWR bits). */
function writes(flags: unknown): boolean {
  if (typeof flags === 'number') return (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR)) !== 0;
  return typeof flags === 'string' && /[wax+]/.test(flags);
}

/**
 * Wraps fs/promises so that its `at`-th change (counted from 1; 0: none) kills the process, or its `at`-th change that
 * may take space fails with ENOSPC.
 * @example const fsHook = interruptAtChange(3, 'enospc'); try { await save(); } finally { fsHook.restore(); }
 */
export function interruptAtChange(at: number, how: 'kill' | 'enospc'): FsInterrupt {
  const promises = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const originals = new Map(CHANGING.map((name) => [name, promises[name]!]));
  let changes = 0;
  for (const [name, original] of originals) {
    promises[name] = (...args: unknown[]) => {
      if ((name !== 'open' || writes(args[1])) && (how === 'kill' || TAKING_SPACE.has(name))) {
        changes++;
        if (changes === at) {
          if (how === 'kill') {
            process.kill(process.pid, 'SIGKILL');
            return new Promise(() => {}); // the signal ends the process before this change is made
          }
          const err = Object.assign(new Error(`ENOSPC: no space left on device, ${name} '${String(args[0])}'`), { code: 'ENOSPC', errno: -28, syscall: name, path: String(args[0]) });
          return Promise.reject(err);
        }
      }
      return original.apply(fs.promises, args);
    };
  }
  syncBuiltinESMExports();
  return {
    get changes() {
      return changes;
    },
    restore() {
      for (const [name, original] of originals) promises[name] = original;
      syncBuiltinESMExports();
    },
  };
}
