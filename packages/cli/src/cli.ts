// The huatuo-train command line: train (and, with no arguments, the demonstration run), generate,
// merge, eval, plan and serve, plus sus and gen-data from their packages; errors become a message and exit code 1.
import { Command } from 'commander';
import { buildGenDataCommand } from '@huatuo/kg';
import { DEFAULT_CONFIG, resolveConfig, type TrainConfig } from '@huatuo/sft';
import { buildSusCommand } from '@huatuo/sus';
import { readFileSync } from 'node:fs';
import { describeFileSystemError } from './fs-errors.js';
import { buildEvalCommand, buildGenerateCommand, buildMergeCommand } from './model-commands.js';
import { buildPlanCommand } from './plan-command.js';
import { buildServeCommand } from './serve-command.js';
import { say, setVerbose } from './terminal.js';
import { DEMO_CONFIG, DEMO_OUTPUT_DIR, buildTrainCommand, trainCommand } from './train-command.js';

const err = process.stderr;

/** The version in this package's package.json, one folder above src/ and dist/ alike. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** The whole command tree. */
export function buildProgram(): Command {
  const program = new Command('huatuo-train')
    .description(
      "HuaTuo's medical instruction tuning of LLaMA on WebGPU. With no command: the demonstration run " +
        `(a LoRA on a built-in tiny LLaMA with the built-in sample, written to ${DEMO_OUTPUT_DIR}).`,
    )
    .version(packageVersion())
    .option('--verbose', "also show the GPU runtime's own notices (Dawn's adapter limit warnings)")
    .hook('preAction', (command) => {
      setVerbose(Boolean(command.opts().verbose));
    })
    .showHelpAfterError()
    // The demonstration takes no arguments: a word there is a mistyped command, said as such.
    .allowExcessArguments(true)
    .action(async (_options: unknown, command: Command) => {
      if (command.args.length > 0) {
        const names = command.commands.map((c) => c.name()).join(', ');
        command.error(`error: unknown command '${command.args[0]}'; the commands are ${names} (with none, huatuo-train runs the demonstration)`, { code: 'commander.unknownCommand' });
      }
      const config = resolveConfig({}, { ...DEFAULT_CONFIG, ...DEMO_CONFIG } as TrainConfig);
      await trainCommand(config, { overwriteOutputDir: true }, true);
    });
  program.addCommand(buildTrainCommand());
  program.addCommand(buildGenerateCommand());
  program.addCommand(buildMergeCommand());
  program.addCommand(buildEvalCommand());
  program.addCommand(buildPlanCommand(say));
  program.addCommand(buildServeCommand());
  program.addCommand(buildSusCommand());
  program.addCommand(buildGenDataCommand());
  return program;
}

/** Runs the CLI; errors print their message (no stack) and exit 1. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  // A reader that stops early (`huatuo-train plan | head -1`) closes stdout: the rest of the output is
  // dropped and the command goes on to its end (a training run still saves), instead of dying on a write.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (e) {
    const fileProblem = describeFileSystemError(e);
    if (fileProblem !== null) {
      err.write(`huatuo-train: ${fileProblem}\n`);
      process.exitCode = 1;
      return;
    }
    const error = e as Error;
    const known = error && typeof error.name === 'string' && error.name !== 'Error' && error.name !== 'TypeError';
    err.write(`huatuo-train: ${known ? `${error.name}: ` : ''}${error?.message ?? String(e)}\n`);
    if (!known && process.env.HUATUO_DEBUG) err.write(`${error?.stack}\n`);
    process.exitCode = 1;
  }
}
