// The demonstration run's first phase: the tiny stand-in base learns a few demo records (every
// weight, about a minute), then answers one of their questions before HuaTuo's LoRA recipe runs.
import { DEFAULT_GENERATION, answerQuestions, pretrainDemoBase, type BaseModel, type PreparedData } from '@huatuo/sft';
import { say } from './terminal.js';

/** How the demonstration trains its stand-in base: records learned, optimizer steps, AdamW lr. */
export const DEMO_BASE = Object.freeze({ records: 3, steps: 90, learningRate: 2e-2, warmupSteps: 5, seed: 2023 });

/** Tokens the demonstration generates for its sample answers (the answers are 90-130 tokens). */
export const DEMO_ANSWER_TOKENS = 160;

/** Prints the model's greedy answer to `question`. */
export async function sayAnswer(base: BaseModel, data: PreparedData, question: string, label: string): Promise<void> {
  const options = { ...DEFAULT_GENERATION, numBeams: 1, doSample: false, maxNewTokens: DEMO_ANSWER_TOKENS };
  const [answer] = await answerQuestions(base.model, base.tokenizer, data.template, [question], options);
  say(`${label}${answer?.answer || '(empty)'}`);
}

/**
 * The demonstration's `prepareBase`: trains the base on the first {@link DEMO_BASE}.records
 * training records, prints its loss and its answer to the first of them, and keeps only those
 * records for the LoRA phase (no validation set: the base knows nothing else).
 */
export async function trainDemoBase(base: BaseModel, data: PreparedData): Promise<PreparedData> {
  const records = data.trainRecords.slice(0, DEMO_BASE.records);
  const started = Date.now();
  say(`phase 1: the stand-in base learns the full text of ${records.length} demo records (every weight, ${DEMO_BASE.steps} steps, AdamW lr ${DEMO_BASE.learningRate})`);
  const history = await pretrainDemoBase(base, records, data.template, {
    steps: DEMO_BASE.steps,
    batchSize: records.length,
    microBatchSize: records.length,
    learningRate: DEMO_BASE.learningRate,
    warmupSteps: DEMO_BASE.warmupSteps,
    cutoffLen: 256,
    seed: DEMO_BASE.seed,
    onStep: (row) => {
      if (row.step === 1 || row.step % 10 === 0) say(`  step ${row.step}/${DEMO_BASE.steps}  loss ${row.loss.toFixed(3)}  (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    },
  });
  const first = history[0]?.loss ?? NaN;
  const last = history[history.length - 1]?.loss ?? NaN;
  say(`phase 1: loss ${first.toFixed(3)} -> ${last.toFixed(3)} (chance level for 32,000 pieces is ln 32000 = ${Math.log(32000).toFixed(3)})`);
  const question = records[0]!.instruction;
  say();
  say(`sample question (greedy decoding): ${question}`);
  say(`expected answer: ${records[0]!.output}`);
  await sayAnswer(base, data, question, 'before LoRA:     ');
  say();
  say(`phase 2: HuaTuo's LoRA recipe on the same ${records.length} records: the base frozen, an adapter on q_proj and v_proj, loss on the answer only`);
  return { ...data, trainRecords: records, valRecords: [], train: data.train.slice(0, records.length), val: [] };
}
