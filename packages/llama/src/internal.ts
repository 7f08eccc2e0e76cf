// @huatuo/llama/internal: helpers below the public API that this repository's tests check on their
// own (the host-side logits processing of generate, its step-by-step and host-picking paths) or use (assembling models from given weights, adapter_config.json field names). Not a stable surface.
export { setDecodePipelined, setGreedyPipelined, setHostPicks } from './generate/pipelined.js';
export { decodeReplayEnabled, lastReplayCounts, setDecodeReplay } from './generate/decode-replay.js';
export type { ReplayCounts } from './generate/decode-replay.js';
export { setSharedPrompts } from './generate/shared-prompt.js';
export { applyFrequencyPresencePenalty, applyRepetitionPenalty, logSoftmaxRow, sampleToken, tokenUniforms, topIndices } from './generate/sampling.js';
export { assembleModel, bindingLimit } from './model/weights.js';
export { peftFieldNames } from './lora/lora-config.js';
export { KNOWN_PATTERNS } from './tokenizers/tokenizer-patterns.js';
