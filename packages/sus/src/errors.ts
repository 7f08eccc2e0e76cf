// Error classes of @huatuo/sus. Every message names the file, record or argument,
// what was expected, what was got, and what to do about it.

/** Base class of every error thrown by @huatuo/sus. */
export class SusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A file (questions, responses, sheet, study) does not have the expected shape. */
export class StudyFormatError extends SusError {
  /** File the problem was found in. */
  readonly file: string;
  /** 1-based data row (sheet row or JSONL line) where the problem is, when known. */
  readonly row: number | undefined;
  constructor(file: string, row: number | undefined, message: string) {
    super(`${file}${row === undefined ? '' : `, row ${row}`}: ${message}`);
    this.file = file;
    this.row = row;
  }
}

/** A study directory is missing, inconsistent, or asked to do something it cannot. */
export class StudyError extends SusError {}

/** A rating, annotator or item reference is invalid. */
export class RatingError extends SusError {}

/** The LLM judge endpoint failed in a way that retrying cannot fix. */
export class JudgeError extends SusError {}

/** A statistic was asked of data that cannot support it. */
export class StatsError extends SusError {}
