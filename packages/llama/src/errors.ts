// Error classes of @huatuo/llama. Every message names the file (and the tensor or
// field), what was expected, what was found, and what to do about it.

/** A file on disk or in memory does not follow the format it claims. */
export class FormatError extends Error {
  /** The file (path or name) whose content is malformed. */
  readonly file: string;

  constructor(file: string, message: string) {
    super(message);
    this.name = 'FormatError';
    this.file = file;
  }
}

/**
 * A safetensors file, or a sharded checkpoint's `model.safetensors.index.json`,
 * is malformed or does not hold what was asked for.
 */
export class SafetensorsError extends FormatError {
  /** The tensor the problem concerns, when there is one. */
  readonly tensor: string | undefined;

  constructor(file: string, tensor: string | undefined, message: string) {
    const where = tensor === undefined ? `${file}` : `${file}: tensor "${tensor}"`;
    super(file, `${where}: ${message}`);
    this.name = 'SafetensorsError';
    this.tensor = tensor;
  }
}

/**
 * A PyTorch `.bin` checkpoint (torch.save's zip archive and its pickle) is malformed, uses
 * the legacy format, or asks to run code a state dict never needs.
 */
export class TorchCheckpointError extends FormatError {
  /** The tensor the problem concerns, when there is one. */
  readonly tensor: string | undefined;

  constructor(file: string, tensor: string | undefined, message: string) {
    const where = tensor === undefined ? `${file}` : `${file}: tensor "${tensor}"`;
    super(file, `${where}: ${message}`);
    this.name = 'TorchCheckpointError';
    this.tensor = tensor;
  }
}

/** A Hugging Face `config.json` is malformed or describes an unsupported model. */
export class ModelConfigError extends FormatError {
  /** The config field at fault (HF snake_case name), when there is one. */
  readonly field: string | undefined;

  constructor(file: string, field: string | undefined, message: string) {
    const where = field === undefined ? `${file}` : `${file}: field "${field}"`;
    super(file, `${where}: ${message}`);
    this.name = 'ModelConfigError';
    this.field = field;
  }
}

/** A run whose estimated GPU memory does not fit the adapter's limits. */
export class MemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemoryError';
  }
}

/** A LoRA adapter (config or tensors) that does not match the model or PEFT's format. */
export class AdapterError extends FormatError {
  constructor(file: string, message: string) {
    super(file, `${file}: ${message}`);
    this.name = 'AdapterError';
  }
}

/** A model used in a way its state does not allow (an argument out of range, a missing adapter). */
export class ModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelError';
  }
}

/** Most characters of a value a message shows. */
const maxShownChars = 100;

/**
 * A config value as a message shows it: its JSON text, cut at maxShownChars, or its kind where it nests too deeply
 * for JSON.stringify (whose stack a value thousands of levels deep overflows, which JSON.parse reads).
 */
export function shown(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return `${Array.isArray(value) ? 'an array' : 'an object'} nested too deeply to show`;
  }
  if (text === undefined) return String(value);
  return text.length > maxShownChars ? `${text.slice(0, maxShownChars)}...` : text;
}
