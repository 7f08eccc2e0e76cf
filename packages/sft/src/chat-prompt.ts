// A Jinja chat template bound to a tokenizer: the prompt text of a conversation, rendered with the
// generation prompt as transformers renders it, and its ids with no BOS or EOS added (the template writes them).

import type { Tokenizer } from '@huatuo/llama';
import { renderChatTemplate, type ChatTemplate } from './chat-template.js';
import { TemplateError } from './errors.js';

/**
 * Token ids of a text (on a worker thread, or the tokenizer itself): with `specialTokens`, BOS and EOS
 * as the tokenizer adds them by default (transformers' add_special_tokens=True, LLaMA's: BOS only);
 * without, none.
 */
export type EncodeText = (text: string, specialTokens: boolean) => Promise<number[]>;

/** A chat template with a tokenizer's special tokens: {@link chatTemplatePrompt}. */
export interface ChatTemplatePrompt {
  /** The text the model continues: the messages and the assistant's opening (add_generation_prompt). Throws what the template raises. */
  text(messages: readonly { role: string; content: string }[]): string;
  /** The ids of such a text: no BOS or EOS added, and the template's special tokens one id each. */
  ids(text: string, encode?: EncodeText): Promise<number[]>;
}

/** Splits `text` around the tokens of `special` (each found whole, longest first), giving their ids in place. */
function splitSpecial(text: string, special: ReadonlyMap<string, number>): (string | number)[] {
  if (special.size === 0) return [text];
  const names = [...special.keys()].sort((a, b) => b.length - a.length);
  const pattern = new RegExp(names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  const out: (string | number)[] = [];
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(special.get(m[0])!);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/**
 * Binds `template` to `tokenizer`: `bos_token` and `eos_token` default to the tokenizer's; a tokenizer
 * without BOS (tokenizer_config.json's bos_token null, as Qwen2's) leaves `bos_token` undefined, which
 * renders as '' and fails in `+`, as in transformers' Jinja environment. `ids`
 * encodes as transformers' apply_chat_template(tokenize=True) does, with add_special_tokens=False:
 * the tokenizer reads the special tokens of its folder written in the text as their ids, and any
 * other token of the template's tokenizer_config.json that it would read as several ids is split
 * out as one id, as transformers adds each such token to the tokenizer. It encodes with the
 * tokenizer itself unless given `encode`.
 *
 * @example
 * const p = chatTemplatePrompt(loadChatTemplate('./Llama-2-7b-chat-hf'), tokenizer);
 * await p.ids(p.text([{ role: 'user', content: 'hi' }])); // [1, 518, 25580, 29962, 7251, 518, 29914, 25580, 29962]
 */
export function chatTemplatePrompt(template: ChatTemplate, tokenizer: Tokenizer): ChatTemplatePrompt {
  const special = new Map<string, number>();
  for (const name of template.addedTokens) {
    const id = tokenizer.pieceToId(name);
    if (id === undefined) continue;
    const read = tokenizer.encode(name, { addBos: false, addEos: false });
    if (read.length !== 1 || read[0] !== id) special.set(name, id);
  }
  // transformers passes the special tokens map, which leaves out a token that is None: with no BOS (Qwen2's),
  // bos_token is undefined in the template, as there.
  const tokens: Record<string, string | readonly string[]> = { eos_token: tokenizer.idToPiece(tokenizer.eosId), ...template.specialTokens };
  if (tokenizer.hasBos) tokens['bos_token'] ??= tokenizer.idToPiece(tokenizer.bosId);
  const withTokens: ChatTemplate = { ...template, specialTokens: tokens };
  const ownEncode: EncodeText = async (text, specialTokens) => tokenizer.encode(text, specialTokens ? {} : { addBos: false, addEos: false });
  return {
    text(messages) {
      try {
        return renderChatTemplate(withTokens, messages, true);
      } catch (e) {
        if (!(e instanceof TemplateError) || 'bos_token' in tokens || !/\bbos_token\b/.test(template.source)) throw e;
        throw new TemplateError(
          `${e.message}; the template uses bos_token, which is undefined for this tokenizer without BOS (bos_token null in tokenizer_config.json, as transformers leaves it out too); use the chat template written for this model`,
        );
      }
    },
    async ids(text, encode = ownEncode) {
      const ids: number[] = [];
      for (const part of splitSpecial(text, special)) {
        if (typeof part === 'number') ids.push(part);
        else for (const id of await encode(part, false)) ids.push(id); // a loop: spreading 150k+ ids overflows the call stack
      }
      return ids;
    },
  };
}
