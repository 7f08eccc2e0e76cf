// HuaTuo's prompt templates and Prompter: a template JSON file {description, prompt_input,
// prompt_no_input, response_split}, filled as Python's str.format fills it; the answer is
// appended right after the prompt, and read back as the text after the response marker.

import { baseName, typeName } from './data.js';
import { TemplateError } from './errors.js';

/** A prompt template, as HuaTuo's `templates/<name>.json` files hold one. */
export interface PromptTemplate {
  /** Built-in name or the file it was read from. */
  name: string;
  description: string;
  /** Used when a record's `input` is non-empty; `null` if the template has none. */
  promptInput: string | null;
  /** Used when `input` is empty (always, for HuaTuo's data). */
  promptNoInput: string;
  /** The marker after which the model's answer begins. */
  responseSplit: string;
}

/** HuaTuo's `templates/med_template.json`, the template of its medical knowledge tuning. */
export const MED_TEMPLATE: PromptTemplate = {
  name: 'med_template',
  description: 'Template used by Med Instruction Tuning',
  promptInput: '下面是一个问题，运用医学知识来正确回答提问.\n### 问题:\n{instruction}\n### 回答:\n',
  promptNoInput: '下面是一个问题，运用医学知识来正确回答提问.\n### 问题:\n{instruction}\n### 回答:\n',
  responseSplit: '### 回答:',
};

/** HuaTuo's `templates/literature_template.json`, used with the liver-cancer literature data. */
export const LITERATURE_TEMPLATE: PromptTemplate = {
  name: 'literature_template',
  description: 'Template used by Alpaca-LoRA.',
  promptInput: null,
  promptNoInput: '以下是描述任务的说明，编写适当地回复完成请求的响应。\n\n ### 说明:\n{instruction}\n\n### 回复:\n',
  responseSplit: '### 回复:',
};

/** Templates known by name. */
export const BUILTIN_TEMPLATES: Readonly<Record<string, PromptTemplate>> = {
  med_template: MED_TEMPLATE,
  literature_template: LITERATURE_TEMPLATE,
};

type FormatPiece = { text: string } | { field: string };

/** Splits a Python format string into literal text and `{field}` references. */
function parseFormat(format: string, where: string): FormatPiece[] {
  const pieces: FormatPiece[] = [];
  let text = '';
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!;
    if (c === '{' && format[i + 1] === '{') {
      text += '{';
      i++;
    } else if (c === '}' && format[i + 1] === '}') {
      text += '}';
      i++;
    } else if (c === '{') {
      const close = format.indexOf('}', i);
      const field = close < 0 ? '' : format.slice(i + 1, close);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(field)) {
        throw new TemplateError(`${where}: unsupported placeholder at character ${i + 1}; use {instruction} or {input}, and write a literal brace as {{ or }}`);
      }
      if (text) pieces.push({ text });
      text = '';
      pieces.push({ field });
      i = close;
    } else if (c === '}') {
      throw new TemplateError(`${where}: single "}" at character ${i + 1}; write a literal brace as }}`);
    } else text += c;
  }
  if (text) pieces.push({ text });
  return pieces;
}

/**
 * Python's `format_string.format(**values)` for named fields.
 * @example pythonFormat('Q: {instruction}', { instruction: 'x' }) === 'Q: x'
 */
export function pythonFormat(format: string, values: Readonly<Record<string, string>>): string {
  return parseFormat(format, 'template')
    .map((p) => {
      if ('text' in p) return p.text;
      const v = values[p.field];
      if (v === undefined) throw new TemplateError(`template: placeholder {${p.field}} has no value; templates may use {instruction} and {input}`);
      return v;
    })
    .join('');
}

function checkFormat(format: string, where: string, required: readonly string[]): void {
  const fields = parseFormat(format, where).flatMap((p) => ('field' in p ? [p.field] : []));
  for (const f of fields) {
    if (f !== 'instruction' && f !== 'input') throw new TemplateError(`${where}: unknown placeholder {${f}}; templates may use {instruction} and {input}`);
  }
  for (const r of required) {
    if (!fields.includes(r)) throw new TemplateError(`${where}: has no {${r}} placeholder, so the question would never reach the model; add {${r}}`);
  }
}

/**
 * Builds a template from the parsed JSON of a template file, checking every field.
 * @throws TemplateError naming the file and field.
 */
export function parseTemplate(json: unknown, name: string): PromptTemplate {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new TemplateError(`${name}: expected a JSON object {description, prompt_input, prompt_no_input, response_split}`);
  }
  const obj = json as Record<string, unknown>;
  const str = (key: string, required: boolean): string | null => {
    const v = obj[key];
    if (v === undefined && !required) return null;
    if (typeof v !== 'string') {
      throw new TemplateError(`${name}: "${key}" must be a string, got ${v === undefined ? 'nothing' : typeName(v)}`);
    }
    return v;
  };
  const promptNoInput = str('prompt_no_input', true)!;
  const promptInput = str('prompt_input', false);
  const responseSplit = str('response_split', true)!;
  if (responseSplit.trim() === '') throw new TemplateError(`${name}: "response_split" is empty; give the marker after which the answer starts`);
  checkFormat(promptNoInput, `${name} prompt_no_input`, ['instruction']);
  if (promptInput !== null) checkFormat(promptInput, `${name} prompt_input`, ['instruction']);
  for (const [key, p] of [['prompt_no_input', promptNoInput], ['prompt_input', promptInput]] as const) {
    if (p !== null && !p.includes(responseSplit)) {
      throw new TemplateError(`${name}: ${key} does not contain response_split ${JSON.stringify(responseSplit)}, so answers could not be read back`);
    }
  }
  return { name, description: str('description', false) ?? '', promptInput, promptNoInput, responseSplit };
}

/**
 * HuaTuo's `Prompter.generate_prompt`: the template filled with the question (and `input`
 * when non-empty), with the answer appended directly when one is given.
 * @example generatePrompt(MED_TEMPLATE, '头痛怎么办？').endsWith('### 回答:\n')
 */
export function generatePrompt(template: PromptTemplate, instruction: string, input?: string | null, label?: string | null): string {
  let res: string;
  if (input) {
    if (template.promptInput === null) {
      throw new TemplateError(`${baseName(template.name)}: the record has a non-empty "input" but the template has no prompt_input; clear the input or use a template with prompt_input`);
    }
    res = pythonFormat(template.promptInput, { instruction, input });
  } else {
    res = pythonFormat(template.promptNoInput, { instruction });
  }
  return label ? `${res}${label}` : res;
}

// Python's str.strip() removes what str.isspace() accepts; JavaScript's trim() differs
// (it strips U+FEFF, and keeps U+001C-U+001F and U+0085).
const PY_SPACE = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/**
 * Python's `str.strip()` with no arguments. Scans from both ends, in time linear in the text (a
 * trailing-space regular expression retries from every space of a long run inside the text).
 */
export function pythonStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PY_SPACE.test(text[start]!)) start++;
  while (end > start && PY_SPACE.test(text[end - 1]!)) end--;
  return text.slice(start, end);
}

/**
 * HuaTuo's `Prompter.get_response`: `output.split(response_split)[1].strip()`, the text
 * between the first marker and the next one (if the model wrote it again).
 * @throws TemplateError if the text holds no marker.
 * @example getResponse(MED_TEMPLATE, '...### 回答:\n 多喝水。 ') === '多喝水。'
 */
export function getResponse(template: PromptTemplate, output: string): string {
  const parts = output.split(template.responseSplit);
  if (parts.length < 2) {
    throw new TemplateError(`${baseName(template.name)}: generated text holds no response marker ${JSON.stringify(template.responseSplit)}; decode the prompt together with the new tokens`);
  }
  return pythonStrip(parts[1]!);
}
