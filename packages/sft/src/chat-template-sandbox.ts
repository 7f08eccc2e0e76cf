// The sandbox chat templates render in. transformers renders in Jinja2's ImmutableSandboxedEnvironment, whose
// only bound on work is range()'s MAX_RANGE; a template from a downloaded tokenizer_config.json can still loop in
// nested loops, recurse through macros or double a string until the process hangs or runs out of memory. Here
// rendering also stops at bounds on steps, nesting and text length that real chat templates stay far below.
// Browser-safe.

import { Environment, Interpreter, type Template } from '@huggingface/jinja';
import { ChatTemplateException } from './errors.js';

/** Jinja2's sandbox MAX_RANGE: the most items range() may give. */
export const MAX_RANGE = 100_000;
// The bounds on work and text grow with the conversation, since a real chat template's work does: Llama-2's,
// Llama-3's, Mistral's, ChatML and Qwen3's templates take 25 to 150 steps per message (3 values: the message, its
// role and content) and write each message once with a few tokens around it; on 4000 messages of 1000 characters,
// or three of 4 million, they use at most 7% of any bound. A million steps take about half a second.
/** The steps (expressions evaluated, statements and blocks rendered, list items made) any rendering may take. */
export const MAX_STEPS = 1_000_000;
/** The steps a rendering may take in addition per value of its variables (a string, a number, a list, an object...). */
export const MAX_STEPS_PER_VALUE = 1_000;
/**
 * The characters of a string an operator or a call reads (`==`, `in`, `+`, `startswith`, ...) that count as one
 * step: reading is not free (20000 startswith calls on half a million characters take over a minute), and a
 * rendering may take one more step per character of its variables.
 */
export const CHARS_READ_PER_STEP = 64;
/** The characters a string or a rendered block may hold in any rendering. */
export const MAX_CHARS = 1 << 20;
/** The characters a string or a rendered block may hold in addition per character of the rendering's variables. */
export const MAX_CHARS_PER_CHAR = 16;
/** How many times the longest string allowed the text made in one rendering (strings, rendered blocks) may add up to. */
export const MAX_MADE_PER_LONGEST = 16;
/** The deepest nesting of expressions and blocks, reached only by recursion through macros. */
export const MAX_DEPTH = 1_000;
/** The most items a list may hold. */
export const MAX_ITEMS = 1_000_000;

/** The size of a rendering's variables: the characters of their strings, and how many values they hold. */
function sizeOf(items: Record<string, unknown>): { chars: number; values: number } {
  let chars = 0;
  let values = 0;
  const visit = (v: unknown): void => {
    values++;
    if (typeof v === 'string') chars += v.length;
    else if (Array.isArray(v)) v.forEach(visit);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(visit);
  };
  Object.values(items).forEach(visit);
  return { chars, values };
}

/** A bound of the sandbox that a template reached: what it did and the bound, for the message. */
export class TemplateLimitError extends Error {
  override name = 'TemplateLimitError';
}

/** A value of the engine's runtime, as far as the bounds look at it. */
interface RuntimeValue {
  readonly type: string;
  readonly value: unknown;
}

/** The engine's own methods that every expression and every block goes through (not part of its typed API). */
interface InterpreterInternals {
  evaluate(statement: unknown, environment: Environment): RuntimeValue;
  renderBlock(statements: readonly unknown[], environment: Environment): string;
}

/**
 * The nodes of a template whose values an operator or a call reads whole: both sides of a binary operator, the
 * arguments of a call, the object a method is called on ('inList' for the right side of `in`, whose list is searched).
 */
function readNodes(program: unknown): Map<object, 'read' | 'inList'> {
  const reads = new Map<object, 'read' | 'inList'>();
  const seen = new Set<object>();
  const visit = (node: unknown): void => {
    if (typeof node !== 'object' || node === null || seen.has(node)) return;
    seen.add(node);
    const n = node as { type?: unknown; operator?: { value?: unknown }; left?: object; right?: object; callee?: { type?: unknown; object?: object }; args?: unknown[] };
    if (n.type === 'BinaryExpression' && n.left && n.right) {
      reads.set(n.left, 'read');
      reads.set(n.right, n.operator?.value === 'in' || n.operator?.value === 'not in' ? 'inList' : 'read');
    } else if (n.type === 'CallExpression') {
      for (const arg of n.args ?? []) if (typeof arg === 'object' && arg !== null) reads.set(arg, 'read');
      if (n.callee?.type === 'MemberExpression' && n.callee.object) reads.set(n.callee.object, 'read');
    }
    for (const child of Object.values(node)) visit(child);
  };
  visit(program);
  return reads;
}

const readNodesOf = new WeakMap<BoundedTemplate, Map<object, 'read' | 'inList'>>();

/** Whether evaluating `node` makes a new value (a variable, an item or an attribute is one that exists; a slice is new). */
function makesValue(node: unknown): boolean {
  const n = node as { type?: unknown; property?: { type?: unknown } } | undefined;
  if (n === undefined || n === null) return false;
  return n.type !== 'Identifier' && !(n.type === 'MemberExpression' && n.property?.type !== 'SliceExpression');
}

/** Python's range(stop) / range(start, stop[, step]), refusing more than MAX_RANGE items as Jinja2's sandbox does. */
function boundedRange(...args: unknown[]): number[] {
  if (args.length < 1 || args.length > 3 || !args.every((a) => typeof a === 'number' && Number.isSafeInteger(a))) {
    throw new Error(`range() takes one to three integers, got (${args.map((a) => JSON.stringify(a)).join(', ')})`);
  }
  const [start, stop, step] = (args.length === 1 ? [0, args[0], 1] : [args[0], args[1], args[2] ?? 1]) as [number, number, number];
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  const count = Math.max(0, Math.ceil((stop - start) / step));
  if (count > MAX_RANGE) throw new Error(`Range too big. The sandbox blocks ranges larger than MAX_RANGE (${MAX_RANGE}).`);
  return Array.from({ length: count }, (_, i) => start + i * step);
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** transformers' strftime_now: Python's datetime.now().strftime(format) in the C locale, for its usual directives. */
function strftimeNow(format: unknown): string {
  if (typeof format !== 'string') throw new Error(`strftime_now() takes a format string, got ${JSON.stringify(format)}`);
  const d = new Date();
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  const dayOfYear = Math.round((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 86_400_000) + 1;
  const directives: Record<string, () => string> = {
    a: () => DAYS[d.getDay()]!.slice(0, 3),
    A: () => DAYS[d.getDay()]!,
    b: () => MONTHS[d.getMonth()]!.slice(0, 3),
    B: () => MONTHS[d.getMonth()]!,
    d: () => pad(d.getDate()),
    H: () => pad(d.getHours()),
    I: () => pad(d.getHours() % 12 === 0 ? 12 : d.getHours() % 12),
    j: () => pad(dayOfYear, 3),
    m: () => pad(d.getMonth() + 1),
    M: () => pad(d.getMinutes()),
    p: () => (d.getHours() < 12 ? 'AM' : 'PM'),
    S: () => pad(d.getSeconds()),
    y: () => pad(d.getFullYear() % 100),
    Y: () => String(d.getFullYear()),
    '%': () => '%',
  };
  return format.replace(/%(.)/gs, (all, c: string) => directives[c]?.() ?? all);
}

/**
 * A parsed @huggingface/jinja Template, typed by what is used of it so that this package's declarations do
 * not depend on that package's.
 */
export interface BoundedTemplate {
  readonly parsed: object;
}

/**
 * Renders a parsed template with `items` as its variables, as Template.render does (with Jinja's globals, and
 * raise_exception's message coming back as a ChatTemplateException), within the sandbox's bounds: range() gives
 * at most MAX_RANGE items; no rendering takes more than MAX_STEPS + MAX_STEPS_PER_VALUE steps per value of
 * `sizedBy` + one per character of `sizedBy` (each list item made or searched by `in` counts as one, and each
 * CHARS_READ_PER_STEP characters an operator or a call reads) or nests deeper than MAX_DEPTH; no list grows past
 * MAX_ITEMS items, no string or rendered block past MAX_CHARS + MAX_CHARS_PER_CHAR characters per character of
 * `sizedBy`, and the text made (strings, rendered blocks) adds up to at most MAX_MADE_PER_LONGEST times that.
 * `sizedBy` (default `items`) holds the variables the work grows with: a chat's messages, not the special tokens
 * that come with the template from the same files.
 * @throws TemplateLimitError when a bound is reached; what the template raises; the engine's errors.
 */
export function renderBounded(template: BoundedTemplate, items: Record<string, unknown>, sizedBy: Record<string, unknown> = items): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false, true: true, none: null, False: false, True: true, None: null,
    range: boundedRange,
    strftime_now: strftimeNow,
    raise_exception: (message: unknown) => {
      throw new ChatTemplateException(String(message));
    },
  };
  for (const [name, value] of Object.entries({ ...globals, ...items })) env.set(name, value);

  const interpreter = new Interpreter(env);
  const internals = interpreter as unknown as InterpreterInternals;
  if (typeof internals.evaluate !== 'function' || typeof internals.renderBlock !== 'function') {
    throw new Error('internal: this @huggingface/jinja has no Interpreter.evaluate and renderBlock for the chat template sandbox to bound; install the version packages/sft/package.json names');
  }
  const evaluate = internals.evaluate.bind(interpreter);
  const renderBlock = internals.renderBlock.bind(interpreter);
  const size = sizeOf(sizedBy);
  const maxSteps = MAX_STEPS + MAX_STEPS_PER_VALUE * size.values + size.chars;
  const maxChars = MAX_CHARS + MAX_CHARS_PER_CHAR * size.chars;
  const maxMade = MAX_MADE_PER_LONGEST * maxChars;
  let reads = readNodesOf.get(template);
  if (reads === undefined) readNodesOf.set(template, (reads = readNodes(template.parsed)));
  let steps = 0;
  let depth = 0;
  let made = 0;
  const step = (count: number): void => {
    steps += count;
    if (steps > maxSteps) throw new TemplateLimitError(`took more than ${maxSteps} steps (expressions evaluated, statements rendered, list items made or searched, text read)`);
  };
  const enter = (): void => {
    if (++depth > MAX_DEPTH) throw new TemplateLimitError(`nested deeper than ${MAX_DEPTH} levels (a macro that calls itself without end)`);
  };
  const makeText = (length: number, what: string): void => {
    if (length > maxChars) throw new TemplateLimitError(`made ${what} longer than ${maxChars} characters`);
    made += length;
    if (made > maxMade) throw new TemplateLimitError(`made more than ${maxMade} characters of text in all`);
  };
  internals.evaluate = (statement, environment) => {
    step(1);
    enter();
    try {
      const value = evaluate(statement, environment);
      const read = reads.get(statement as object);
      if (read !== undefined) {
        if (typeof value.value === 'string') step(Math.ceil(value.value.length / CHARS_READ_PER_STEP));
        else if (read === 'inList' && Array.isArray(value.value)) step(value.value.length);
      }
      if (makesValue(statement)) {
        if (typeof value.value === 'string') makeText(value.value.length, 'a string');
        else if (Array.isArray(value.value)) {
          if (value.value.length > MAX_ITEMS) throw new TemplateLimitError(`made a list of more than ${MAX_ITEMS} items`);
          step(value.value.length);
        }
      }
      return value;
    } finally {
      depth--;
    }
  };
  internals.renderBlock = (statements, environment) => {
    step(1 + statements.length);
    enter();
    try {
      const text = renderBlock(statements, environment);
      makeText(text.length, 'a rendered block');
      return text;
    } finally {
      depth--;
    }
  };
  const result = interpreter.run((template as Template).parsed) as unknown as RuntimeValue;
  return String(result.value);
}
