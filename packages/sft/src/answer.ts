// Answers to questions as HuaTuo's inference produces them: the question fills the template, the
// model continues it (4 beams by default), and the answer is the text after the response marker;
// or the question is one user message of the model's own chat template, answered by all it generates.
import { generate, type LlamaModel, type Tokenizer, type TokenEvent } from '@huatuo/llama';
import { chatTemplatePrompt } from './chat-prompt.js';
import { isChatTemplate, type ChatTemplate } from './chat-template.js';
import type { GenerationConfig } from './config.js';
import { generatePrompt, getResponse, type PromptTemplate } from './prompt.js';

/** One answered question. */
export interface Answer {
  question: string;
  answer: string;
  finishReason: 'eos' | 'stop' | 'length';
}

/** Options of {@link answerQuestions}. */
export interface AnswerOptions extends GenerationConfig {
  repetitionPenalty?: number;
  /** OpenAI's frequency and presence penalties (generate's frequencyPenalty, presencePenalty); greedy decoding and sampling only. */
  frequencyPenalty?: number;
  presencePenalty?: number;
  seed?: number;
  /** Questions answered per batch. */
  batchSize?: number;
  onToken?: (event: TokenEvent) => void;
  onAnswer?: (answer: Answer, index: number) => void | Promise<void>;
}

/** A question's prompt: the text the model continues and its ids as the model receives them. */
export interface QuestionPrompt {
  text: string;
  ids: number[];
}

/** How questions become prompts and generations become answers under one template: {@link questionPrompter}. */
export interface QuestionPrompter {
  prompt(question: string): Promise<QuestionPrompt>;
  /** The answer in what the model generated after `prompt` (special tokens already skipped). */
  answer(prompt: QuestionPrompt, generated: string): string;
}

/**
 * The prompts of questions and how an answer is read from what the model writes. A HuaTuo
 * template: the question fills it, encoded as the tokenizer's own call encodes it (LLaMA's: BOS
 * first, as HuaTuo's generate.py calls it), and the answer is read after the response
 * marker (HuaTuo's get_response). A chat template: the question is one user message, rendered with
 * add_generation_prompt and encoded with no BOS or EOS added (the template writes them), and the answer is
 * all the model writes, as `huatuo-train serve` answers a chat.
 *
 * @example
 * const q = questionPrompter(loadChatTemplate('./Llama-2-7b-chat-hf'), tokenizer);
 * (await q.prompt('hi')).ids; // [1, 518, 25580, 29962, 7251, 518, 29914, 25580, 29962]
 */
export function questionPrompter(template: PromptTemplate | ChatTemplate, tokenizer: Tokenizer): QuestionPrompter {
  if (isChatTemplate(template)) {
    const chat = chatTemplatePrompt(template, tokenizer);
    return {
      async prompt(question) {
        const text = chat.text([{ role: 'user', content: question }]);
        return { text, ids: await chat.ids(text) };
      },
      answer: (_prompt, generated) => generated,
    };
  }
  return {
    async prompt(question) {
      const text = generatePrompt(template, question);
      return { text, ids: tokenizer.encode(text) };
    },
    answer: (prompt, generated) => getResponse(template, `${prompt.text}${generated}`),
  };
}

/** Answers each question with the model, with a HuaTuo prompt template or the model's chat template ({@link questionPrompter}). */
export async function answerQuestions(
  model: LlamaModel,
  tokenizer: Tokenizer,
  template: PromptTemplate | ChatTemplate,
  questions: readonly string[],
  options: AnswerOptions,
): Promise<Answer[]> {
  const answers: Answer[] = [];
  const batch = Math.max(1, options.batchSize ?? 1);
  const prompter = questionPrompter(template, tokenizer);
  for (let start = 0; start < questions.length; start += batch) {
    const chunk = questions.slice(start, start + batch);
    const prompts = await Promise.all(chunk.map((q) => prompter.prompt(q)));
    const outs = await generate(model, tokenizer, prompts.map((p) => p.ids), {
      maxNewTokens: options.maxNewTokens,
      numBeams: options.numBeams,
      doSample: options.doSample,
      temperature: options.temperature,
      topP: options.topP,
      topK: options.topK,
      repetitionPenalty: options.repetitionPenalty ?? 1,
      frequencyPenalty: options.frequencyPenalty ?? 0,
      presencePenalty: options.presencePenalty ?? 0,
      seed: options.seed ?? 0,
      onToken: options.onToken,
    });
    for (let i = 0; i < outs.length; i++) {
      const out = outs[i]!;
      const answer: Answer = {
        question: chunk[i]!,
        answer: prompter.answer(prompts[i]!, out.text),
        finishReason: out.finishReason,
      };
      answers.push(answer);
      await options.onAnswer?.(answer, start + i);
    }
  }
  return answers;
}
