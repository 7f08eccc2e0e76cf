// The models' own Jinja chat templates in the page: a base folder's, and an adapter folder's where the adapter brings its own
// vocabulary and tokenizer, read as on the command line (chat_template.jinja over tokenizer_config.json's "chat_template") and
// kept with the tokenizer of their folder, since the template that applies is that of the vocabulary in use (--template chat).

import type { Tokenizer } from '@huatuo/llama';
import { ChatTemplateException, chatTemplateFromFiles, TemplateError, type BaseModel, type ChatTemplate, type ChatTemplateFiles } from '@huatuo/sft';

/** A folder's chat template: the template, or why its file cannot be used, or null where the folder has none. */
export interface FolderChatTemplate {
  /** The folder, as messages name it. */
  readonly where: string;
  readonly found: { readonly template: ChatTemplate } | { readonly problem: string } | null;
}

const byTokenizer = new WeakMap<Tokenizer, FolderChatTemplate>();

/** The names of the files a chat template is read from, by the field of ChatTemplateFiles they fill. */
const FILES = { tokenizerConfigJson: 'tokenizer_config.json', chatTemplateJinja: 'chat_template.jinja', specialTokensMapJson: 'special_tokens_map.json' } as const;

/** Whether tokenizer_config.json's text names a chat template (a text that is not JSON is left to chatTemplateFromFiles to refuse). */
function configNamesTemplate(text: string): boolean {
  try {
    const config = JSON.parse(text) as { chat_template?: unknown } | null;
    return typeof config !== 'object' || config === null || (config.chat_template ?? null) !== null;
  } catch {
    return true;
  }
}

/**
 * A library message told in the page's terms: where it names the command line's --template, the page has the choice of prompt
 * above the question, and a folder's chat_template.jinja overrides tokenizer_config.json's "chat_template".
 */
function inPageTerms(message: string): string {
  return message
    .replace('and pass it with --template path/to/template.jinja', "as chat_template.jinja beside it and pick the folder again, or choose HuaTuo's prompt")
    .replace('or give one with --template path/to/template.jinja', "or choose HuaTuo's prompt");
}

/**
 * A failure to render the question with `template`, told in the page's terms: a TemplateError without the command line's
 * flag, and a refusal of the template (its raise_exception) naming its file. Anything else is returned as it is.
 */
export function renderProblem(err: unknown, template: ChatTemplate): unknown {
  if (err instanceof ChatTemplateException) return new ChatTemplateException(`${template.name}: the chat template refuses this question: ${err.message}`, { cause: err });
  if (err instanceof TemplateError) return new TemplateError(inPageTerms(err.message), { cause: err });
  return err;
}

/**
 * Reads the chat template of a folder's files (`read` gives a file's text by name, undefined where there is none) and keeps it
 * with `tokenizer`, the tokenizer read from the same folder, for {@link chatTemplateFor}.
 */
export async function keepFolderChatTemplate(tokenizer: Tokenizer, read: (name: string) => Promise<string | undefined>, where: string): Promise<void> {
  const files: ChatTemplateFiles = {};
  for (const [field, name] of Object.entries(FILES) as [keyof typeof FILES, string][]) {
    const text = await read(name);
    if (text !== undefined) files[field] = text;
  }
  const has = files.chatTemplateJinja !== undefined || (files.tokenizerConfigJson !== undefined && configNamesTemplate(files.tokenizerConfigJson));
  let found: FolderChatTemplate['found'] = null;
  if (has) {
    try {
      found = { template: chatTemplateFromFiles(files, where) };
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      found = { problem: inPageTerms(err.message) };
    }
  }
  byTokenizer.set(tokenizer, { where, found });
}

/** Whether the base's folder, or that of an attached adapter with its own tokenizer, has a chat template (or one that cannot be used). */
export function offersChatTemplate(base: BaseModel): boolean {
  return [base.baseTokenizer, base.tokenizer].some((t) => (byTokenizer.get(t)?.found ?? null) !== null);
}

/** The file of the chat template of the vocabulary in use, for the page to name ('' where it has none). */
export function chatTemplateName(base: BaseModel): string {
  const found = byTokenizer.get(base.tokenizer)?.found ?? byTokenizer.get(base.baseTokenizer)?.found;
  return found && 'template' in found ? found.template.name : '';
}

/**
 * The chat template of the vocabulary `base` computes with now: its folder's, and where an attached adapter brings its own
 * tokenizer, the adapter folder's alone, as transformers' AutoTokenizer.from_pretrained on that folder reads it and the
 * command line's --template chat does. Throws TemplateError naming the folder or file where there is none to use.
 */
export function chatTemplateFor(base: BaseModel): ChatTemplate {
  const kept = byTokenizer.get(base.tokenizer);
  const own = base.tokenizer !== base.baseTokenizer;
  const where = kept?.where ?? (base.isDemo ? 'the demo model' : base.name);
  const found = kept?.found ?? null;
  if (found !== null) {
    if ('template' in found) return found.template;
    throw new TemplateError(found.problem);
  }
  throw new TemplateError(
    own
      ? `${where} brings the adapter's own vocabulary and tokenizer, whose chat template is the one that applies (the base's does not, as transformers' AutoTokenizer.from_pretrained on the adapter folder reads it), ` +
          `but has no chat_template.jinja and no "chat_template" in a tokenizer_config.json; add the template the adapter was trained with to the adapter folder and pick it again, or choose HuaTuo's prompt`
      : `${where} has no chat template of its own (no chat_template.jinja and no "chat_template" in a tokenizer_config.json); choose HuaTuo's prompt`,
  );
}
