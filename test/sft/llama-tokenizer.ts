// LLaMA's real 32,000-piece SentencePiece vocabulary (llama-tokenizer-js) behind the
// TextTokenizer interface of @huatuo/sft, as Hugging Face's LlamaTokenizer behaves:
// a leading "▁" dummy prefix, BOS 1 by default, EOS 2 on request, pad 0.

import llamaTokenizer from 'llama-tokenizer-js';
import type { TextTokenizer } from '@huatuo/sft';

export const llama = llamaTokenizer;

export const llamaText: TextTokenizer = {
  encode(text, options) {
    const addBos = options?.addBos ?? true;
    // llama-tokenizer-js returns [] for "" even with BOS; LlamaTokenizer gives [BOS].
    const ids = text === '' ? (addBos ? [1] : []) : llamaTokenizer.encode(text, addBos, true);
    if (options?.addEos) ids.push(2);
    return ids;
  },
  bosId: 1,
  eosId: 2,
  padId: 0,
};

/** Pieces of `text` with no BOS and no dummy prefix, for building expected ids by hand. */
export function pieces(text: string): number[] {
  return llamaTokenizer.encode(text, false, false);
}
