// Writes the new checkpoint of checkpoint-versions.ts into an output folder, killed (SIGKILL) at its n-th change to
// the file system as a crash would end it; checkpoint-replace-interrupted.test.ts runs it as a child process.
// Arguments: the output folder, the step, the change to be killed at (0: none). Prints the changes the save made.
import { initWebGPU } from '@huatuo/tensor';
import { interruptAtChange, type FsInterrupt } from '../llama/fs-interrupt.js';
import { saveCheckpointVersion } from './checkpoint-versions.js';

const [outputDir, step, killAt] = process.argv.slice(2);
await initWebGPU();
let hook: FsInterrupt | undefined;
await saveCheckpointVersion(outputDir!, Number(step), 'new', () => (hook = interruptAtChange(Number(killAt), 'kill')));
process.stdout.write(`${JSON.stringify({ changes: hook!.changes })}\n`);
