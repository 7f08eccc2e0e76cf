// Tiny LLaMA model folders with chat templates, for the serve and generate chat-template tests: the
// vocab32k fixture with LLaMA's tokenizer files and a given tokenizer_config.json.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { llamaTokenizerDir } from '@huatuo/llama';

const fixture = fileURLToPath(new URL('../fixtures/llama/vocab32k', import.meta.url));

/** meta-llama/Llama-2-7b-chat-hf's chat_template. */
export const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/** A copy of the vocab32k model (context 512) with LLaMA's `tokenizerFiles` and `tokenizerConfig` as tokenizer_config.json. */
export function chatModelFolder(tokenizerFiles: string[], tokenizerConfig: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-chat-'));
  cpSync(fixture, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config['max_position_embeddings'] = 512;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const f of tokenizerFiles) cpSync(join(llamaTokenizerDir(), f), join(dir, f));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  return dir;
}
