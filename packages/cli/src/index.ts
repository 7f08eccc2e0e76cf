// @huatuo/cli: the huatuo-train command tree, and the pieces of it other programs may mount or reuse.

export { buildProgram, main } from './cli.js';
export { DEMO_OUTPUT_DIR, DEMO_CONFIG } from './train-command.js';
export { buildServeCommand } from './serve-command.js';
export type { ServeCommandIo } from './serve-command.js';
export { buildPlanCommand, planLines } from './plan-command.js';
export { progressReporter } from './progress.js';
export { describeFileSystemError } from './fs-errors.js';
