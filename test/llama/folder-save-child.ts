// Saves the new adapter or merged model of folder-save-versions.ts into a folder, killed (SIGKILL) at its n-th change
// to the file system as a crash would end it; folder-save-interrupted.test.ts runs it as a child process.
// Arguments: adapter|model, the folder, the change to be killed at (0: none). Prints the changes the save made.
import { initWebGPU } from '@huatuo/tensor';
import { interruptAtChange, type FsInterrupt } from './fs-interrupt.js';
import { saveVersion } from './folder-save-versions.js';

const [kind, dir, killAt] = process.argv.slice(2);
await initWebGPU();
let hook: FsInterrupt | undefined;
await saveVersion(kind as 'adapter' | 'model', dir!, 'new', () => (hook = interruptAtChange(Number(killAt), 'kill')));
process.stdout.write(`${JSON.stringify({ changes: hook!.changes })}\n`);
