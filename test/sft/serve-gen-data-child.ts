// Runs `gen-data` with the command-line arguments against a server, as huatuo-train would; the
// serve tests start it as a child process and kill it with SIGKILL. A run that ends because the
// graph has no unused pairs left (the tiny test model's replies fail the checks) reports that on
// stdout as JSON and exits 0; any other error exits 1.
import { ExhaustedError, buildGenDataCommand } from '@huatuo/kg';

try {
  await buildGenDataCommand({ out: (l) => process.stdout.write(`${l}\n`), err: () => {} }).parseAsync(process.argv.slice(2), { from: 'user' });
} catch (e) {
  if (!(e instanceof ExhaustedError)) throw e;
  process.stdout.write(`${JSON.stringify({ exhausted: e.total, message: e.message })}\n`);
}
