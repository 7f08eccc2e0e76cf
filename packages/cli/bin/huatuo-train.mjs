#!/usr/bin/env node
// huatuo-train: runs the compiled CLI (dist/, built by `npm run build`, which scripts/setup.sh runs).
import { existsSync } from 'node:fs';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('huatuo-train: the package is not built yet; run `npm run build` at the repository root (scripts/setup.sh does it)');
  process.exit(1);
}
const { main } = await import(cli.href);
await main(process.argv);
