// Chat with the base model and the adapted one side by side: HuaTuo's prompt template or the model's own chat template,
// greedy or sampled decoding, tokens streamed into the page as they are generated. Each model tokenizes with its
// own vocabulary's tokenizer (the adapter's where it brings its own) and, with the model's chat template, renders the question
// with that vocabulary's template, through the command line's questionPrompter.

import { adaptedLinears, generate, type LlamaModel, type LoraWeights } from '@huatuo/llama';
import { isChatTemplate, MED_TEMPLATE, questionPrompter, type BaseModel, type QuestionPrompt } from '@huatuo/sft';
import { chatTemplateFor, renderProblem } from './model-chat-template.js';

/**
 * How a question becomes the prompt: HuaTuo's med_template (the question fills it, the answer is read after its response
 * marker), or the model's own Jinja chat template (the question is one user message, the answer is all the model writes).
 */
export type PromptChoice = 'huatuo' | 'chat';

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

/** One answer: its text, the ids of the prompt and those generated, the tokens per second and why it ended. */
export interface ChatAnswer {
  text: string;
  promptTokens: readonly number[];
  tokens: readonly number[];
  tokensPerSec: number;
  finish: 'eos' | 'stop' | 'length';
}

/**
 * Answers one question, streaming text to `onText`; `adapter` false answers with the base model (and its own
 * tokenizer and chat template). The prompt is made and the answer read as `huatuo-train generate --template med_template`
 * or `--template chat` makes and reads them ({@link questionPrompter}); generation stops at the ids of the folder's
 * generation_config.json, else its config.json's. Throws TemplateError naming the file where the chat template is
 * missing or fails to render, and ChatTemplateException naming it where it refuses the question (raise_exception).
 */
export async function answer(
  base: BaseModel,
  question: string,
  settings: ChatSettings,
  adapter: boolean,
  choice: PromptChoice,
  onText: (text: string) => void,
): Promise<ChatAnswer> {
  let streamed = '';
  const started = performance.now();
  const run = async () => {
    // Read once the adapter is on or off: base.tokenizer is the one of the vocabulary in use, with its chat template.
    const template = choice === 'chat' ? chatTemplateFor(base) : MED_TEMPLATE;
    const prompter = questionPrompter(template, base.tokenizer);
    let prompt: QuestionPrompt;
    try {
      prompt = await prompter.prompt(question);
    } catch (err) {
      throw isChatTemplate(template) ? renderProblem(err, template) : err;
    }
    const [g] = await generate(base.model, base.tokenizer, [prompt.ids], {
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
    return { text: prompter.answer(prompt, g!.text), promptTokens: prompt.ids, generation: g! };
  };
  const { text, promptTokens, generation } = adapter ? await run() : await withoutAdapter(base.model, run);
  const sec = (performance.now() - started) / 1000;
  const tokens = generation.tokens;
  return { text, promptTokens, tokens, tokensPerSec: tokens.length / Math.max(sec, 1e-3), finish: generation.finishReason };
}
