// How the server turns a chat into the prompt the model continues: HuaTuo's prompt template (one
// question, the answer read after its response marker), or the model's own Jinja chat template,
// rendered as transformers renders it and tokenized with no BOS or EOS added (the template writes them).

import type { Tokenizer } from '@huatuo/llama';
import { chatTemplatePrompt, type EncodeText } from './chat-prompt.js';
import { isChatTemplate, type ChatTemplate } from './chat-template.js';
import { ChatTemplateException, TemplateError } from './errors.js';
import { generatePrompt, type PromptTemplate } from './prompt.js';
import { HttpError } from './serve-errors.js';

/** One chat message as OpenAI sends it. */
export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

/**
 * The single question HuaTuo's single-turn template receives for a chat. System (and
 * developer) messages come first, joined by newlines, each followed by a newline. A chat
 * with one user message and nothing before it gives that message as is (HuaTuo's
 * med_template data). With earlier turns, the conversation is written the way HuaTuo's
 * liver-cancer data writes multi-turn records: " <user>: q1 <bot>: a1 <user>: q2".
 * The last message must be the user's.
 *
 * @example chatToInstruction([{ role: 'user', content: '头痛怎么办？' }]) === '头痛怎么办？'
 */
export function chatToInstruction(messages: readonly ChatMessage[]): string {
  const system = messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => `${m.content}\n`).join('');
  const turns = messages.filter((m) => m.role === 'user' || m.role === 'assistant');
  const last = turns[turns.length - 1];
  if (last === undefined || last.role !== 'user') {
    throw new HttpError(400, 'messages: the last user or assistant message must be from the user (the model answers the last question)');
  }
  if (turns.length === 1) return `${system}${last.content}`;
  return system + turns.map((m) => ` <${m.role === 'user' ? 'user' : 'bot'}>: ${m.content}`).join('');
}

/** How chats become prompts under one template. */
export interface ChatPrompter {
  /** The prompt text of a conversation; throws the HttpError to answer when the template refuses it. */
  text(messages: readonly ChatMessage[]): string;
  /** Its token ids, as the model receives them. */
  ids(text: string): Promise<number[]>;
  /** Stop strings every chat reply gets (HuaTuo's response marker; none for a chat template, whose model ends with EOS). */
  stops: readonly string[];
  /** Whether the reply is stripped as HuaTuo's get_response strips it. */
  strip: boolean;
}

function jinjaPrompter(template: ChatTemplate, tokenizer: Tokenizer, encode: EncodeText): ChatPrompter {
  const prompt = chatTemplatePrompt(template, tokenizer);
  // OpenAI's developer messages are the system messages of its newer models. A template that never
  // names the role gets them as system messages (as vLLM and llama.cpp pass them), where LLaMA's
  // templates would drop them or refuse the conversation.
  const knowsDeveloper = template.source.includes('developer');
  return {
    text(messages) {
      try {
        return prompt.text(knowsDeveloper ? messages : messages.map((m) => (m.role === 'developer' ? { ...m, role: 'system' } : m)));
      } catch (e) {
        if (e instanceof ChatTemplateException) throw new HttpError(400, `messages: the chat template (${template.name}) refuses this conversation: ${e.message}`);
        if (e instanceof TemplateError) throw new HttpError(400, `messages: ${e.message}`);
        throw e;
      }
    },
    ids: (text) => prompt.ids(text, encode),
    stops: [],
    strip: false,
  };
}

/**
 * The prompter of a template: a HuaTuo {@link PromptTemplate} fills its one question with
 * {@link chatToInstruction} and encodes it as the tokenizer's own call does (LLaMA's: BOS first); a
 * Jinja {@link ChatTemplate} renders the messages with add_generation_prompt and encodes the text as
 * it is, BOS only where it writes one.
 */
export function chatPrompter(template: PromptTemplate | ChatTemplate, tokenizer: Tokenizer, encode: EncodeText): ChatPrompter {
  if (isChatTemplate(template)) return jinjaPrompter(template, tokenizer, encode);
  return {
    text: (messages) => generatePrompt(template, chatToInstruction(messages)),
    ids: (text) => encode(text, true),
    // The model writing the response marker again ends its answer (get_response reads up to it).
    stops: [template.responseSplit],
    strip: true,
  };
}
