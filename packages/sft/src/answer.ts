// Answers to questions as HuaTuo's inference produces them: the question fills the template, the
// model continues it (4 beams by default), and the answer is the text after the response marker.
import { generate, type LlamaModel, type Tokenizer, type TokenEvent } from '@huatuo/llama';
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
  seed?: number;
  /** Questions answered per batch. */
  batchSize?: number;
  onToken?: (event: TokenEvent) => void;
  onAnswer?: (answer: Answer, index: number) => void | Promise<void>;
}

/** Answers each question with the model. */
export async function answerQuestions(
  model: LlamaModel,
  tokenizer: Tokenizer,
  template: PromptTemplate,
  questions: readonly string[],
  options: AnswerOptions,
): Promise<Answer[]> {
  const answers: Answer[] = [];
  const batch = Math.max(1, options.batchSize ?? 1);
  for (let start = 0; start < questions.length; start += batch) {
    const chunk = questions.slice(start, start + batch);
    const prompts = chunk.map((q) => generatePrompt(template, q));
    const outs = await generate(model, tokenizer, prompts, {
      maxNewTokens: options.maxNewTokens,
      numBeams: options.numBeams,
      doSample: options.doSample,
      temperature: options.temperature,
      topP: options.topP,
      topK: options.topK,
      repetitionPenalty: options.repetitionPenalty ?? 1,
      seed: options.seed ?? 0,
      onToken: options.onToken,
    });
    for (let i = 0; i < outs.length; i++) {
      const out = outs[i]!;
      const answer: Answer = {
        question: chunk[i]!,
        answer: getResponse(template, `${prompts[i]}${out.text}`),
        finishReason: out.finishReason,
      };
      answers.push(answer);
      await options.onAnswer?.(answer, start + i);
    }
  }
  return answers;
}
