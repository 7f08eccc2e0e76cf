// Runs `gen-data` with the command-line arguments, as huatuo-train would; the
// resumability test starts it as a child process and kills it with SIGKILL.
import { buildGenDataCommand } from '@huatuo/kg';

await buildGenDataCommand().parseAsync(process.argv.slice(2), { from: 'user' });
