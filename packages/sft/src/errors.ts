// Error classes of @huatuo/sft. Messages name the file, flag or record, what was
// expected, what was found, and what to do about it.

import { CONFIG_OPTIONS } from './config-options.js';

/** A data or template file that cannot be read as the recipe expects (bad JSON, bad records). */
export class DataError extends Error {
  override readonly name = 'DataError';
  /** The file at fault, as given by the caller. */
  readonly file: string;
  /** Every problem found, one sentence each; the message shows the first few. */
  readonly problems: readonly string[];

  constructor(file: string, problems: readonly string[], maxShown = 10) {
    const shown = problems.slice(0, maxShown);
    const more = problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : '';
    super(`${file}: ${problems.length === 1 ? shown[0] : `${problems.length} problems:\n  ${shown.join('\n  ')}${more}`}`);
    this.file = file;
    this.problems = problems;
  }
}

/** A prompt template that is missing, malformed or used with a field it lacks. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

/** The config key of each recipe flag, e.g. `--val-set-size` -> `valSetSize`. */
const OPTION_OF_FLAG: ReadonlyMap<string, string> = new Map(CONFIG_OPTIONS.map((o) => [o.flag, o.key]));

/**
 * A configuration value (flag, or the config key a library caller wrote) out of range or of the wrong
 * type. The message names the flag and, for a recipe flag, its config key: `--val-set-size (valSetSize): ...`.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The command-line flag at fault, e.g. `--cutoff-len`. */
  readonly flag: string;
  /** The TrainConfig key (resolveConfig and runTraining option) of the flag, e.g. `cutoffLen`; undefined for a flag that is no config key. */
  readonly option: string | undefined;

  /** `option` defaults to the config key whose flag is `flag` in CONFIG_OPTIONS. */
  constructor(flag: string, message: string, option: string | undefined = OPTION_OF_FLAG.get(flag)) {
    super(`${flag}${option === undefined ? '' : ` (${option})`}: ${message}`);
    this.flag = flag;
    this.option = option;
  }
}

/** A checkpoint that is missing, incomplete or does not match the run resuming from it. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/** Training stopped: a non-finite loss, a lost device, or an interruption (the message says what to resume from). */
export class TrainingError extends Error {
  override readonly name = 'TrainingError';
}

/** A chat template refused a conversation through its own `raise_exception(message)`. */
export class ChatTemplateException extends Error {
  override readonly name = 'ChatTemplateException';
}
