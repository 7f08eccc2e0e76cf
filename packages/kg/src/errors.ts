// Error classes of @huatuo/kg. Every message names the file, record or argument,
// what was expected, what was got, and what to do about it.

/** Base class of every error thrown by @huatuo/kg. */
export class KgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A knowledge-graph file cannot be read as entity records at all. */
export class GraphFormatError extends KgError {
  /** File the problem was found in. */
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.file = file;
  }
}

/** An existing output file is not a gen-data JSONL file that can be resumed. */
export class OutputFormatError extends KgError {
  /** Output file. */
  readonly file: string;
  /** 1-based line of the problem. */
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super(`${file}, line ${line}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

/** A command-line flag or option has a value that cannot be used. */
export class OptionError extends KgError {}

/** The chat-completions endpoint failed in a way that retrying cannot fix. */
export class ApiError extends KgError {
  /** HTTP status of the last response, when there was one. */
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

/** The model's replies keep failing the checks: `--max-consecutive-rejects` of them in a row. */
export class UnusableRepliesError extends KgError {
  /** Records in the output file when generation stopped. */
  readonly total: number;
  constructor(message: string, total: number) {
    super(message);
    this.total = total;
  }
}

/** The sampler ran out of unused (entity, attribute set) pairs before the count was reached. */
export class ExhaustedError extends KgError {
  /** Records in the output file when generation stopped. */
  readonly total: number;
  constructor(message: string, total: number) {
    super(message);
    this.total = total;
  }
}
