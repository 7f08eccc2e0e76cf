// Chat with the base model and the adapted one side by side: HuaTuo's prompt template, greedy or
// sampled decoding, tokens streamed into the page as they are generated.

import { adaptedLinears, generate, type LlamaModel, type LoraWeights, type Tokenizer } from '@huatuo/llama';
import { generatePrompt, getResponse, MED_TEMPLATE } from '@huatuo/sft';

/** Decoding settings of the chat. */
export interface ChatSettings {
  doSample: boolean;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
}

/**
 * Runs `fn` with the model's adapter switched off (PEFT's `disable_adapter()`): its LoRA weights and its
 * trained copies of embed_tokens and lm_head; then restores them.
 */
async function withoutAdapter<T>(model: LlamaModel, fn: () => Promise<T>): Promise<T> {
  const saved: [{ lora: LoraWeights | null }, LoraWeights | null][] = adaptedLinears(model).map(({ linear }) => [linear, linear.lora]);
  const copies = model.savedModules;
  for (const [linear] of saved) linear.lora = null;
  model.savedModules = { embedTokens: null, lmHead: null, tokenizer: null };
  try {
    return await fn();
  } finally {
    for (const [linear, lora] of saved) linear.lora = lora;
    model.savedModules = copies;
  }
}

/**
 * Answers one question, streaming text to `onText`; `adapter` false answers with the base model.
 * Returns the whole answer and the tokens per second.
 */
export async function answer(
  model: LlamaModel,
  tokenizer: Tokenizer,
  question: string,
  settings: ChatSettings,
  adapter: boolean,
  onText: (text: string) => void,
): Promise<{ text: string; tokens: number; tokensPerSec: number; finish: string }> {
  const prompt = generatePrompt(MED_TEMPLATE, question);
  let streamed = '';
  const started = performance.now();
  const run = () =>
    generate(model, tokenizer, prompt, {
      maxNewTokens: settings.maxNewTokens,
      doSample: settings.doSample,
      temperature: settings.temperature,
      topP: settings.topP,
      topK: 0,
      seed: settings.seed,
      onToken: (e) => {
        streamed += e.text;
        onText(streamed);
      },
    });
  const [g] = adapter ? await run() : await withoutAdapter(model, run);
  const sec = (performance.now() - started) / 1000;
  const text = getResponse(MED_TEMPLATE, prompt + g!.text); // the answer, cut at a second marker
  return { text, tokens: g!.tokens.length, tokensPerSec: g!.tokens.length / Math.max(sec, 1e-3), finish: g!.finishReason };
}
