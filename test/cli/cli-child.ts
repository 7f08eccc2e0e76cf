// Runs the huatuo-train command line from source with this process's arguments, as the installed
// bin does; the CLI tests spawn it to see its output and exit code.
import { main } from '@huatuo/cli';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
await main(process.argv);
