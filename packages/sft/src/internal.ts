// @huatuo/sft/internal: helpers below the public API that this repository's tests check on their
// own (Python's str.format and str.strip as the recipe's prompts use them, NumPy's SeedSequence, the
// serve queue and its request reader, a chat template bound to a tokenizer, a step's gradient accumulation,
// the micro-batches of each step, Python's round as the Trainer's logs use it).
// Not a stable surface.
export { pythonFormat, pythonStrip } from './prompt.js';
export { seedSequencePool } from './rng.js';
export { accumulateGradients, optimizerStep } from './train-step.js';
export { stepBatches } from './micro-batches.js';
export { noteBestAtEvaluation, noteBestAtSave, parseTrainerStateJson, pythonFloatRepr, pythonRound, stepFlow, trainerStateJson } from './hf-trainer-state.js';
export type { StepFlow, TrainerFlow } from './hf-trainer-state.js';
export { JobQueue } from './serve-queue.js';
export { createRequestReader } from './serve-request.js';
export { chatTemplatePrompt } from './chat-prompt.js';
export type { Job } from './serve-reply.js';
