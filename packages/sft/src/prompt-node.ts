// Prompt templates from disk (Node): a built-in template by name or a template JSON file by path.

import { readFileSync } from 'node:fs';
import { TemplateError } from './errors.js';
import { BUILTIN_TEMPLATES, parseTemplate, type PromptTemplate } from './prompt.js';

/** Reads a template JSON file. */
export function loadTemplate(file: string): PromptTemplate {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TemplateError(`${file}: cannot read the template (${(err as Error).message}); pass a built-in name (${Object.keys(BUILTIN_TEMPLATES).join(', ')}) or a template JSON file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TemplateError(`${file}: not valid JSON (${(err as Error).message.split('\n')[0]}); a template is one JSON object`);
  }
  return parseTemplate(json, file);
}

/**
 * A built-in template by name (`med_template`, `literature_template`), or a template file by path.
 * @example resolveTemplate('med_template').responseSplit === '### 回答:'
 */
export function resolveTemplate(nameOrPath: string): PromptTemplate {
  const builtin = BUILTIN_TEMPLATES[nameOrPath];
  if (builtin) return builtin;
  if (/[\\/]/.test(nameOrPath) || nameOrPath.endsWith('.json')) return loadTemplate(nameOrPath);
  throw new TemplateError(
    `template ${JSON.stringify(nameOrPath)}: no built-in template by that name (built-in: ${Object.keys(BUILTIN_TEMPLATES).join(', ')}); pass one of those or a path to a template .json file`,
  );
}
