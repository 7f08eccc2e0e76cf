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
  applyFilter(operand: RuntimeValue, filter: unknown, environment: Environment): RuntimeValue;
  /** A filter's arguments: the positional ones, and the keyword ones by name. */
  evaluateArguments(args: readonly unknown[], environment: Environment): [RuntimeValue[], Map<string, RuntimeValue>];
}

/** An expression node, as far as the checks before a filter or a replace() look at it. */
interface ExpressionNode {
  readonly type: string;
  readonly value?: unknown;
  readonly callee?: ExpressionNode & { readonly object?: ExpressionNode; readonly property?: ExpressionNode; readonly computed?: boolean };
  readonly args?: readonly ExpressionNode[];
  readonly operator?: { readonly value?: unknown };
  readonly left?: ExpressionNode;
  readonly right?: ExpressionNode;
}

/** A node standing for a value already evaluated, so that a filter's arguments, checked first, are evaluated once. */
const EVALUATED = 'SandboxEvaluatedValue';

function evaluated(value: RuntimeValue): { type: string; value: RuntimeValue } {
  return { type: EVALUATED, value };
}

/** Arguments already evaluated, as a call's argument nodes: the positional ones, then the keyword ones. */
function evaluatedArgs(args: readonly RuntimeValue[], kwargs: ReadonlyMap<string, RuntimeValue>): object[] {
  return [...args.map(evaluated), ...[...kwargs].map(([key, value]) => ({ type: 'KeywordArgumentExpression', key: { type: 'Identifier', value: key }, value: evaluated(value) }))];
}

/**
 * At least the characters of a value's text (tojson, string, or what `~` and join make of it): its strings with
 * their repeats, each item one character more, stopping once past `limit`.
 */
function textChars(value: RuntimeValue, limit: number, indent = 0, separator = 1, depth = 0): number {
  let total = 0;
  const visit = (v: RuntimeValue, d: number): void => {
    if (total > limit) return;
    if (typeof v.value === 'string') total += v.value.length;
    else if (Array.isArray(v.value) || v.value instanceof Map) {
      const items: RuntimeValue[] = Array.isArray(v.value) ? v.value : [...(v.value as Map<string, RuntimeValue>).values()];
      if (v.value instanceof Map) for (const key of v.value.keys()) total += String(key).length;
      // tojson's indent puts each item on a line of its own, indented to its depth, and the closing bracket on another.
      if (indent > 0 && items.length > 0) total += items.length * (1 + indent * (d + 1)) + 1 + indent * d;
      total += Math.max(0, items.length - 1) * separator + 1;
      for (const item of items) visit(item, d + 1);
    }
  };
  visit(value, depth);
  return total;
}

/** At least the characters `~` (and `+` beside a string) makes of a value: JavaScript's String of its value, a list's items joined by commas. */
function concatChars(value: RuntimeValue, limit: number): number {
  if (typeof value.value === 'string') return value.value.length;
  if (!Array.isArray(value.value)) return 0;
  let total = Math.max(0, value.value.length - 1);
  for (const item of value.value as RuntimeValue[]) if (total <= limit) total += textChars(item, limit);
  return total;
}

/** A filter argument: the positional one at `index`, else the keyword one, else the default. */
function argument(args: readonly RuntimeValue[], kwargs: ReadonlyMap<string, RuntimeValue>, index: number, name: string): RuntimeValue | undefined {
  return args[index] ?? kwargs.get(name);
}

/** The characters `indent` makes of `text`: each line but the first and the empty ones (unless asked) gets the indent. */
function indentedChars(text: string, width: number, first: boolean, blank: boolean): number {
  let indented = 0;
  let start = 0;
  for (let line = 0; start <= text.length; line++) {
    const end = text.indexOf('\n', start);
    const stop = end < 0 ? text.length : end;
    if ((first || line > 0) && (blank || stop > start)) indented++;
    if (end < 0) break;
    start = end + 1;
  }
  return text.length + indented * width;
}

/** The characters Python's str.replace (count < 0: all) makes of `text`, counted before it is made, stopping once past `limit`. */
function replacedChars(text: string, old: string, by: string, count: number, limit: number): number {
  if (by.length <= old.length || count === 0) return text.length;
  const most = count < 0 ? Infinity : count;
  let found = 0;
  if (old === '') {
    // Python puts the replacement before each character and at the end.
    for (const _ of text) if (++found >= most) break;
    found = Math.min(found + 1, most);
  } else {
    for (let at = text.indexOf(old); at >= 0 && found < most; at = text.indexOf(old, at + old.length)) {
      found++;
      if (text.length + found * (by.length - old.length) > limit) break;
    }
  }
  return text.length + found * (by.length - old.length);
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
 * A filter or replace() that would make a longer string (indent, join, replace, tojson and string of a list) is
 * refused before the string is made.
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
  if (typeof internals.evaluate !== 'function' || typeof internals.renderBlock !== 'function' || typeof internals.applyFilter !== 'function' || typeof internals.evaluateArguments !== 'function') {
    throw new Error('internal: this @huggingface/jinja has no Interpreter.evaluate, renderBlock, applyFilter and evaluateArguments for the chat template sandbox to bound; install the version packages/sft/package.json names');
  }
  const evaluate = internals.evaluate.bind(interpreter);
  const renderBlock = internals.renderBlock.bind(interpreter);
  const applyFilter = internals.applyFilter.bind(interpreter);
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
  // A string a filter or replace() would make longer than a string may be is refused before it is made: `indent` with a
  // width of 400 million, a replace() or join that multiplies a text, tojson's indent over many items.
  const refuseLonger = (chars: number, what: string): void => {
    if (chars > maxChars) throw new TemplateLimitError(`would make a string of ${chars >= maxChars * 2 ? `more than ${maxChars * 2}` : chars} characters with ${what}, longer than ${maxChars} characters`);
  };
  const bound = 2 * maxChars;
  const checkFilter = (name: string, operand: RuntimeValue, args: readonly RuntimeValue[], kwargs: ReadonlyMap<string, RuntimeValue>): void => {
    const text = typeof operand.value === 'string' ? operand.value : null;
    if (name === 'indent' && text !== null) {
      const width = argument(args, kwargs, 0, 'width')?.value ?? 4;
      const chars = typeof width === 'string' ? width.length : typeof width === 'number' ? Math.max(0, width) : 0;
      refuseLonger(indentedChars(text, chars, !!argument(args, kwargs, 1, 'first')?.value, !!argument(args, kwargs, 2, 'blank')?.value), 'indent');
    } else if (name === 'join') {
      const separator = argument(args, kwargs, 0, 'separator')?.value;
      const sep = typeof separator === 'string' ? separator.length : 0;
      if (text !== null) {
        let chars = 0;
        for (const _ of text) if (++chars > bound) break;
        refuseLonger(text.length + Math.max(0, chars - 1) * sep, 'join');
      } else if (Array.isArray(operand.value)) {
        let chars = Math.max(0, operand.value.length - 1) * sep;
        // join writes each item as JavaScript does: an object as "[object Map]", a list as its items' text.
        for (const item of operand.value as RuntimeValue[]) if (chars <= bound && !(item.value instanceof Map)) chars += textChars(item, bound);
        refuseLonger(chars, 'join');
      }
    } else if (name === 'replace' && text !== null) {
      const [old, by] = args;
      const count = argument(args, kwargs, 2, 'count')?.value;
      if (typeof old?.value === 'string' && typeof by?.value === 'string') refuseLonger(replacedChars(text, old.value, by.value, typeof count === 'number' ? count : -1, bound), 'replace');
    } else if (name === 'tojson' || (name === 'string' && Array.isArray(operand.value))) {
      const indent = kwargs.get('indent')?.value;
      const separators = kwargs.get('separators')?.value;
      const itemSeparator = Array.isArray(separators) && typeof (separators[0] as RuntimeValue | undefined)?.value === 'string' ? ((separators[0] as RuntimeValue).value as string).length : 1;
      refuseLonger(textChars(operand, bound, typeof indent === 'number' ? Math.max(0, indent) : 0, itemSeparator), name);
    }
  };
  internals.applyFilter = (operand, filter, environment) => {
    const node = filter as ExpressionNode;
    if (node.type === 'Identifier' && typeof node.value === 'string') checkFilter(node.value, operand, [], new Map());
    else if (node.type === 'CallExpression' && node.callee?.type === 'Identifier' && ['indent', 'join', 'replace', 'tojson'].includes(node.callee.value as string)) {
      const [args, kwargs] = internals.evaluateArguments(node.args ?? [], environment);
      checkFilter(node.callee.value as string, operand, args, kwargs);
      return applyFilter(operand, { ...node, args: evaluatedArgs(args, kwargs) }, environment);
    }
    return applyFilter(operand, filter, environment);
  };
  // text.replace(old, new): the string and the arguments evaluated once, checked, then replaced by the engine.
  const evaluateChecked = (statement: unknown, environment: Environment): RuntimeValue => {
    const node = statement as ExpressionNode | undefined;
    const operator = node?.operator?.value;
    if (node?.type === 'BinaryExpression' && (operator === '~' || operator === '+') && node.left !== undefined && node.right !== undefined) {
      const left = internals.evaluate(node.left, environment);
      const right = internals.evaluate(node.right, environment);
      const text = operator === '~' || typeof left.value === 'string' || typeof right.value === 'string';
      if (text && (Array.isArray(left.value) || Array.isArray(right.value))) refuseLonger(concatChars(left, bound) + concatChars(right, bound), operator);
      return evaluate({ ...node, left: evaluated(left), right: evaluated(right) }, environment);
    }
    const callee = node?.callee;
    if (node?.type !== 'CallExpression' || callee?.type !== 'MemberExpression' || callee.computed || callee.property?.value !== 'replace' || callee.object === undefined) return evaluate(statement, environment);
    const object = internals.evaluate(callee.object, environment);
    const [args, kwargs] = internals.evaluateArguments(node.args ?? [], environment);
    checkFilter('replace', object, args, kwargs);
    return evaluate({ ...node, callee: { ...callee, object: evaluated(object) }, args: evaluatedArgs(args, kwargs) }, environment);
  };
  internals.evaluate = (statement, environment) => {
    if ((statement as ExpressionNode | undefined)?.type === EVALUATED) return (statement as { value: RuntimeValue }).value;
    step(1);
    enter();
    try {
      const value = evaluateChecked(statement, environment);
      if (printed.has(statement as object) && (Array.isArray(value.value) || value.value instanceof Map)) refuseLonger(textChars(value, bound), 'a printed value');
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
  // The statements of a block that print their value (as its text: a list or an object as tojson writes it).
  const printed = new WeakSet<object>();
  internals.renderBlock = (statements, environment) => {
    step(1 + statements.length);
    for (const statement of statements) if (typeof statement === 'object' && statement !== null) printed.add(statement);
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
