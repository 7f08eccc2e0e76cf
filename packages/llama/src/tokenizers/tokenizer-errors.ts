/**
 * The tokenizer's error class: a tokenizer file that is missing, corrupt or
 * uses a feature the tokenizers here do not implement.
 */

/**
 * A tokenizer file could not be read or used. The message names the file,
 * what was expected, what was found, and what to do.
 *
 * @example
 * try { await loadTokenizer('./model'); } catch (e) { if (e instanceof TokenizerError) console.error(e.message); }
 */
export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
  /** The file (or source name) the error is about, when there is one. */
  readonly file: string | undefined;

  constructor(message: string, options: { file?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.file = options.file;
  }
}
