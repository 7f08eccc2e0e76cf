// A model's own Jinja chat template (Hugging Face's `chat_template`), read from the contents of its
// tokenizer files and rendered with @huggingface/jinja as transformers' apply_chat_template renders it,
// within the bounds of chat-template-sandbox.ts.

import { Template } from '@huggingface/jinja';
import { renderBounded, TemplateLimitError } from './chat-template-sandbox.js';
import { ChatTemplateException, TemplateError } from './errors.js';

/** A chat template ready to render, with the special tokens transformers passes to it. */
export interface ChatTemplate {
  readonly kind: 'jinja';
  /** The file the template text came from (for messages), e.g. `llama-3/tokenizer_config.json`. */
  readonly name: string;
  /** The Jinja source. */
  readonly source: string;
  /** `bos_token`, `eos_token`, `unk_token`, ... as strings (transformers' `special_tokens_map`). */
  readonly specialTokens: Readonly<Record<string, string | readonly string[]>>;
  /** Every added token's text (tokenizer_config's `added_tokens_decoder`, and the special tokens). */
  readonly addedTokens: readonly string[];
  /**
   * The parsed template (an @huggingface/jinja Template, typed by what is used of it so that this
   * package's declarations do not depend on that package's).
   */
  readonly compiled: { render(items: Record<string, unknown>, sizedBy?: Record<string, unknown>): string };
}

/** The contents of the files a chat template is read from; `where` names their folder in errors. */
export interface ChatTemplateFiles {
  /** tokenizer_config.json. */
  tokenizerConfigJson?: string;
  /** chat_template.jinja of the model folder, which overrides tokenizer_config.json's `chat_template`. */
  chatTemplateJinja?: string;
  /** special_tokens_map.json, whose tokens override tokenizer_config.json's (as transformers reads them). */
  specialTokensMapJson?: string;
  /** A template given apart from the model folder (a .jinja file): its text and its path. Overrides both. */
  jinjaFile?: { path: string; text: string };
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

function parseJson(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TemplateError(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]}); restore the model's original file`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TemplateError(`${file}: expected a JSON object; restore the model's original file`);
  return value as Record<string, unknown>;
}

/** The start of a JSON value's text, for a message; its kind where it nests too deeply for JSON.stringify's stack. */
function preview(value: unknown): string {
  try {
    return JSON.stringify(value).slice(0, 80);
  } catch {
    return Array.isArray(value) ? `a list of ${value.length} items` : 'an object';
  }
}

/** The template text of tokenizer_config.json's `chat_template`: a string, or the list of named templates' "default". */
function configTemplate(raw: unknown, file: string): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') return raw;
  const named = (Array.isArray(raw) ? raw : [raw]).map((t: unknown) => {
    const { name, template } = (typeof t === 'object' && t !== null ? t : {}) as { name?: unknown; template?: unknown };
    return typeof name === 'string' && typeof template === 'string' ? { name, template } : null;
  });
  if (named.length === 0 || named.some((t) => t === null)) {
    throw new TemplateError(`${file}: chat_template should be a Jinja string or a list of {"name", "template"}, got ${preview(raw)}; restore the model's original file`);
  }
  const all = named as { name: string; template: string }[];
  const def = all.find((t) => t.name === 'default');
  if (def !== undefined) return def.template;
  throw new TemplateError(
    `${file}: chat_template holds named templates (${all.map((t) => t.name).join(', ')}) and none is named "default"; save the one to use as a .jinja file and pass it with --template path/to/template.jinja`,
  );
}

/**
 * Reads a chat template from the contents of a model's tokenizer files, with transformers'
 * precedence: a separately given .jinja file, else the folder's chat_template.jinja, else
 * tokenizer_config.json's `chat_template` (a string, or the entry named "default" of a list).
 * Throws TemplateError naming the file when there is none or it does not parse.
 *
 * @example
 * const t = chatTemplateFromFiles({ tokenizerConfigJson: readFileSync('llama-3/tokenizer_config.json', 'utf8') }, 'llama-3');
 */
export function chatTemplateFromFiles(files: ChatTemplateFiles, where: string): ChatTemplate {
  const dir = where.replace(/[\\/]+$/, '');
  const configFile = `${dir}/tokenizer_config.json`;
  const config = files.tokenizerConfigJson === undefined ? {} : parseJson(files.tokenizerConfigJson, configFile);
  const specialTokens: Record<string, string | readonly string[]> = {};
  const addedTokens = new Set<string>();
  const readTokens = (json: Record<string, unknown>): void => {
    for (const key of SPECIAL_KEYS) {
      const text = tokenText(json[key]);
      if (text !== undefined) specialTokens[key] = text;
    }
    if (Array.isArray(json['additional_special_tokens'])) {
      specialTokens['additional_special_tokens'] = json['additional_special_tokens'].map(tokenText).filter((t): t is string => t !== undefined);
    }
  };
  readTokens(config);
  if (files.specialTokensMapJson !== undefined) readTokens(parseJson(files.specialTokensMapJson, `${dir}/special_tokens_map.json`));
  const decoder = config['added_tokens_decoder'];
  if (typeof decoder === 'object' && decoder !== null) {
    for (const t of Object.values(decoder)) {
      const text = tokenText(t);
      if (text !== undefined) addedTokens.add(text);
    }
  }
  for (const v of Object.values(specialTokens)) for (const t of typeof v === 'string' ? [v] : v) addedTokens.add(t);

  let name: string;
  let source: string | undefined;
  if (files.jinjaFile !== undefined) {
    name = files.jinjaFile.path;
    source = files.jinjaFile.text;
  } else if (files.chatTemplateJinja !== undefined) {
    name = `${dir}/chat_template.jinja`;
    source = files.chatTemplateJinja;
  } else {
    name = configFile;
    source = configTemplate(config['chat_template'], configFile);
  }
  if (source === undefined) {
    throw new TemplateError(
      `${files.tokenizerConfigJson === undefined ? `${dir}: has no tokenizer_config.json and no chat_template.jinja` : `${configFile}: has no "chat_template" (and ${dir} has no chat_template.jinja)`}, ` +
        "so this model brings no chat template of its own; instead pass HuaTuo's template (--template med_template) or a Jinja chat template file (--template path/to/template.jinja)",
    );
  }
  let compiled: ChatTemplate['compiled'];
  try {
    const template = new Template(source);
    compiled = { render: (items, sizedBy) => renderBounded(template, items, sizedBy) };
  } catch (e) {
    throw new TemplateError(`${name}: the chat template does not parse as Jinja (${(e as Error).message}); restore the model's original template`);
  }
  return { kind: 'jinja', name, source, specialTokens, addedTokens: [...addedTokens], compiled };
}

/** Whether a template is a Jinja {@link ChatTemplate} (rather than a HuaTuo prompt template). */
export function isChatTemplate(t: object): t is ChatTemplate {
  return (t as { kind?: unknown }).kind === 'jinja';
}

/**
 * The text transformers' `tokenizer.apply_chat_template(messages, add_generation_prompt, tokenize=False)`
 * gives: the template rendered with `messages`, `add_generation_prompt`, the special tokens
 * (`bos_token`, `eos_token`, ...), `tools` and `documents` as none, and `raise_exception`, whose
 * message comes back as a {@link ChatTemplateException}; range() gives at most 100000 items, as in Jinja2's
 * sandbox, and a template that loops, recurses or grows its text far beyond what a chat template does is
 * stopped. Other failures, and those, throw TemplateError.
 *
 * @example renderChatTemplate(t, [{ role: 'user', content: 'hi' }]) // '<s>[INST] hi [/INST]' for Llama-2-chat
 */
export function renderChatTemplate(t: ChatTemplate, messages: readonly { role: string; content: string }[], addGenerationPrompt = true): string {
  const conversation = messages.map((m) => ({ role: m.role, content: m.content }));
  try {
    // The bounds grow with the conversation alone: the special tokens come from the same files as the template.
    return t.compiled.render(
      { ...t.specialTokens, messages: conversation, add_generation_prompt: addGenerationPrompt, tools: null, documents: null },
      { messages: conversation },
    );
  } catch (e) {
    if (e instanceof ChatTemplateException) throw e;
    if (e instanceof TemplateLimitError) {
      throw new TemplateError(
        `${t.name}: the chat template ${e.message} rendering ${messages.length} messages, a bound real chat templates stay far below, so this one is broken or hostile; use the model's original chat template, or give one with --template path/to/template.jinja`,
      );
    }
    throw new TemplateError(`${t.name}: the chat template failed to render this conversation (${(e as Error).message})`);
  }
}
