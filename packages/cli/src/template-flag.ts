// --template of `generate` and `serve`: HuaTuo's prompt templates by name or .json file, or the
// model's own Jinja chat template (`chat`: the folder's whose tokenizer is in use; or a .jinja file).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { llamaTokenizerDir } from '@huatuo/llama';
import { TemplateError, loadChatTemplate, resolveTemplate, type ChatTemplate, type PromptTemplate } from '@huatuo/sft';

/** The help of --template where a chat template is accepted. */
export const TEMPLATE_HELP =
  "HuaTuo's med_template, literature_template or a template .json path; chat: the model's own Jinja chat template " +
  '(the --base folder\'s chat_template.jinja or tokenizer_config.json "chat_template", or the --adapter folder\'s where the adapter brings its own tokenizer); ' +
  'or a Jinja chat template .jinja path';

/** Whether --template `value` names a Jinja chat template (`chat` or a .jinja file) rather than a HuaTuo template. */
export function isChatTemplateFlag(value: string): boolean {
  return value === 'chat' || value.endsWith('.jinja');
}

/**
 * The template --template names, read before any model loads so that a missing one fails at once.
 * Chat templates take their special tokens from `base` (the demo model's tokenizer folder when null);
 * a chat template that cannot be loaded fails naming `command` and the flag.
 */
export function resolveTemplateFlag(command: 'generate' | 'serve', value: string, base: string | null): PromptTemplate | ChatTemplate {
  if (!isChatTemplateFlag(value)) return resolveTemplate(value);
  try {
    return loadChatTemplate(base ?? llamaTokenizerDir(), value === 'chat' ? undefined : value);
  } catch (e) {
    if (!(e instanceof TemplateError)) throw e;
    throw new TemplateError(`huatuo-train ${command} --template ${value}: ${e.message}`, { cause: e });
  }
}

/** --template read for a base and an adapter that may bring its own tokenizer: {@link templateFlag}. */
export interface TemplateFlag {
  /** Whether it names a Jinja chat template. */
  readonly chat: boolean;
  /**
   * The template once the adapter loaded, given the folder whose tokenizer the adapter brought (loadAdapterWithTokenizer's
   * result; null where the base's tokenizer stays): a chat template then comes from that folder alone, as transformers'
   * AutoTokenizer.from_pretrained(adapter folder) reads it, never from the base's.
   */
  forTokenizer(adapterTokenizerDir: string | null): PromptTemplate | ChatTemplate;
}

/**
 * --template of a command with `--base` and `--adapter`, checked before any model loads (see resolveTemplateFlag), except
 * a chat template where the adapter folder holds a tokenizer: whether that tokenizer (and so its chat template) replaces the
 * base's is known once the adapter's vocabulary is read.
 */
export function templateFlag(command: 'generate' | 'serve', value: string, base: string | null, adapter: string | undefined): TemplateFlag {
  const chat = isChatTemplateFlag(value);
  const adapterHoldsTokenizer = adapter !== undefined && ['tokenizer.json', 'tokenizer.model'].some((f) => existsSync(join(adapter, f)));
  const early = chat && adapterHoldsTokenizer ? null : resolveTemplateFlag(command, value, base);
  return {
    chat,
    forTokenizer(adapterTokenizerDir) {
      if (!chat || adapterTokenizerDir === null) return early ?? resolveTemplateFlag(command, value, base);
      try {
        return loadChatTemplate(adapterTokenizerDir, value === 'chat' ? undefined : value);
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        throw new TemplateError(
          `huatuo-train ${command} --template ${value} --adapter ${adapterTokenizerDir}: the adapter brings its own vocabulary and tokenizer, whose chat template is the one used, ` +
            `as transformers' AutoTokenizer.from_pretrained on the adapter folder reads it (the base's does not apply): ${e.message}; or add the template the adapter was trained with to ${adapterTokenizerDir} ` +
            '(chat_template.jinja, or "chat_template" in its tokenizer_config.json)',
          { cause: e },
        );
      }
    },
  };
}
