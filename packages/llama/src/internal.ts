// @huatuo/llama/internal: helpers below the public API that this repository's tests check on their
// own (the host-side logits processing of generate, its step-by-step greedy path) or use (assembling models from given weights). Not a stable surface.
export { setDecodePipelined, setGreedyPipelined } from './generate/pipelined.js';
export { applyRepetitionPenalty, logSoftmaxRow, sampleToken, tokenUniforms, topIndices } from './generate/sampling.js';
export { assembleModel, bindingLimit } from './model/weights.js';
