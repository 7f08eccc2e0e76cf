// A model folder's chat template from disk (Node): tokenizer_config.json, chat_template.jinja and
// special_tokens_map.json, or a .jinja file given apart from the folder.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chatTemplateFromFiles, type ChatTemplate, type ChatTemplateFiles } from './chat-template.js';
import { TemplateError } from './errors.js';

function read(file: string, required: boolean): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return undefined;
    throw new TemplateError(`${file}: cannot be read (${code ?? (e as Error).message}); check the path and its permissions`);
  }
}

/**
 * The chat template of the model folder `dir` as transformers loads it (chat_template.jinja over
 * tokenizer_config.json's `chat_template`), or the template of `jinjaFile` when given, with the
 * folder's special tokens either way. Throws TemplateError naming the file when there is none.
 *
 * @example
 * const t = loadChatTemplate('./Meta-Llama-3-8B-Instruct');
 * renderChatTemplate(t, [{ role: 'user', content: 'hi' }]);
 */
export function loadChatTemplate(dir: string, jinjaFile?: string): ChatTemplate {
  const files: ChatTemplateFiles = {};
  const tokenizerConfigJson = read(join(dir, 'tokenizer_config.json'), false);
  const chatTemplateJinja = read(join(dir, 'chat_template.jinja'), false);
  const specialTokensMapJson = read(join(dir, 'special_tokens_map.json'), false);
  if (tokenizerConfigJson !== undefined) files.tokenizerConfigJson = tokenizerConfigJson;
  if (chatTemplateJinja !== undefined) files.chatTemplateJinja = chatTemplateJinja;
  if (specialTokensMapJson !== undefined) files.specialTokensMapJson = specialTokensMapJson;
  if (jinjaFile !== undefined) files.jinjaFile = { path: jinjaFile, text: read(jinjaFile, true)! };
  return chatTemplateFromFiles(files, dir);
}
