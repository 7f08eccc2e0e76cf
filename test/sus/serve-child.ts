// Runs `sus serve` as its own process, for the crash test (the parent kills it with SIGKILL).
import { runSusCli } from '@huatuo/sus';

await runSusCli(['serve', '--study', process.argv[2]!, '--port', '0']);
