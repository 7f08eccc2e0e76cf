// --template of `generate` and `serve`: HuaTuo's prompt templates by name or .json file, or the
// model's own Jinja chat template (`chat`: the --base folder's; or a .jinja file).
import { llamaTokenizerDir } from '@huatuo/llama';
import { TemplateError, loadChatTemplate, resolveTemplate, type ChatTemplate, type PromptTemplate } from '@huatuo/sft';

/** The help of --template where a chat template is accepted. */
export const TEMPLATE_HELP =
  "HuaTuo's med_template, literature_template or a template .json path; chat: the model's own Jinja chat template " +
  '(the --base folder\'s chat_template.jinja or tokenizer_config.json "chat_template"); or a Jinja chat template .jinja path';

/**
 * The template --template names, read before any model loads so that a missing one fails at once.
 * Chat templates take their special tokens from `base` (the demo model's tokenizer folder when null);
 * a chat template that cannot be loaded fails naming `command` and the flag.
 */
export function resolveTemplateFlag(command: 'generate' | 'serve', value: string, base: string | null): PromptTemplate | ChatTemplate {
  if (value !== 'chat' && !value.endsWith('.jinja')) return resolveTemplate(value);
  try {
    return loadChatTemplate(base ?? llamaTokenizerDir(), value === 'chat' ? undefined : value);
  } catch (e) {
    if (!(e instanceof TemplateError)) throw e;
    throw new TemplateError(`huatuo-train ${command} --template ${value}: ${e.message}`, { cause: e });
  }
}
