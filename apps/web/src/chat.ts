// Chat with the base model and the adapted one side by side: HuaTuo's prompt template, greedy or
// sampled decoding, tokens streamed into the page as they are generated. Each model tokenizes with its
// own vocabulary's tokenizer: the adapter's where it brings its own vocabulary.

import { adaptedLinears, generate, type LlamaModel, type LoraWeights } from '@huatuo/llama';
import { generatePrompt, getResponse, MED_TEMPLATE, type BaseModel } from '@huatuo/sft';

/** Decoding settings of the chat. */
export interface ChatSettings {
  doSample: boolean;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
}

/**
 * Switches the model's adapter off (PEFT's `disable_adapter()`): its LoRA weights and its trained copies of
 * embed_tokens and lm_head, with the tokenizer of their vocabulary. Returns what switches it on again.
 */
export function switchAdapterOff(model: LlamaModel): () => void {
  const saved: [{ lora: LoraWeights | null }, LoraWeights | null][] = adaptedLinears(model).map(({ linear }) => [linear, linear.lora]);
  const copies = model.savedModules;
  for (const [linear] of saved) linear.lora = null;
  model.savedModules = { embedTokens: null, lmHead: null, tokenizer: null };
  return () => {
    for (const [linear, lora] of saved) linear.lora = lora;
    model.savedModules = copies;
  };
}

/** Runs `fn` with the model's adapter switched off (see {@link switchAdapterOff}), then on again. */
async function withoutAdapter<T>(model: LlamaModel, fn: () => Promise<T>): Promise<T> {
  const switchOn = switchAdapterOff(model);
  try {
    return await fn();
  } finally {
    switchOn();
  }
}

/**
 * Answers one question, streaming text to `onText`; `adapter` false answers with the base model (and its own
 * tokenizer). Returns the whole answer and the tokens per second.
 */
export async function answer(
  base: BaseModel,
  question: string,
  settings: ChatSettings,
  adapter: boolean,
  onText: (text: string) => void,
): Promise<{ text: string; tokens: number; tokensPerSec: number; finish: string }> {
  const prompt = generatePrompt(MED_TEMPLATE, question);
  let streamed = '';
  const started = performance.now();
  const run = () =>
    // Read once the adapter is on or off: base.tokenizer is the one of the vocabulary in use.
    generate(base.model, base.tokenizer, prompt, {
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
  const [g] = adapter ? await run() : await withoutAdapter(base.model, run);
  const sec = (performance.now() - started) / 1000;
  const text = getResponse(MED_TEMPLATE, prompt + g!.text); // the answer, cut at a second marker
  return { text, tokens: g!.tokens.length, tokensPerSec: g!.tokens.length / Math.max(sec, 1e-3), finish: g!.finishReason };
}
