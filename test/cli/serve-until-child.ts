// Runs `serve` on the demo model with an `until` that fails once the server is up, as a program embedding the
// command would, catching the error as huatuo-train's main does (the process then ends once nothing keeps it
// alive); the serve-command test starts it as a child process. Prints the server's URL, then the error.
import { buildServeCommand } from '@huatuo/cli';

try {
  await buildServeCommand({
    out: () => {},
    err: () => {},
    until: async (server) => {
      process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
      throw new Error('until failed on purpose');
    },
  }).parseAsync(['--port', '0', '--quiet', ...process.argv.slice(2)], { from: 'user' });
} catch (e) {
  process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
  process.exitCode = 1;
}
