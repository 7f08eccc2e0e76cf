// @huatuo/tensor: tensors on WebGPU with reverse-mode autograd. This file is the public surface.
// Its declarations name WebGPU's types (GPUBuffer, GPUDevice): consumers get them from @webgpu/types.
/// <reference types="@webgpu/types" preserve="true" />
import './methods.js';

// Device
export { initWebGPU, destroyWebGPU, deviceInfo, hasF16, synchronize, runtimeStats, resetPeakBytes } from './backend/context.js';
export type { DeviceInfo, DeviceOptions, OptionalFeature } from './backend/device.js';
export type { RuntimeStats } from './backend/runtime.js';

// Tensors
export { Tensor, numel } from './tensor.js';
export type { DType, FloatDType, HostArray } from './tensor.js';
export { tensor, zeros, ones, full, zerosLike, arange, randn, rand, f32ToF16Bits, f16BitsToF32 } from './creation.js';
export type { CreateOptions, RandomOptions } from './creation.js';
export { Generator, manualSeed } from './random.js';
export { toArray, item } from './io.js';
export { recordStep, RecordedStep } from './step-replay.js';
export type { MarkInput, ReplayInputs } from './step-replay.js';

// Memory and autograd
export { tidy, keep, startScope } from './scope.js';
export type { Scope } from './scope.js';
export { noGrad, isGradEnabled, setGradEnabled } from './grad-mode.js';
export { backward } from './autograd.js';
export { checkpoint } from './checkpoint.js';
export type { CheckpointFn } from './checkpoint.js';
export type { BackwardOptions } from './autograd.js';

// Ops
export { add, sub, mul, div, neg } from './ops/arithmetic.js';
export { exp, log, sqrt, rsqrt, pow, silu, relu } from './ops/unary.js';
export { sum, mean, max, argmax } from './ops/reduce.js';
export { sampleLogits, sampleLogitsWithLogprobs } from './ops/sample.js';
export { repetitionPenalty, seenMask, markSeen } from './ops/repetition-penalty.js';
export { frequencyPresencePenalty, tokenCounts, countTokens } from './ops/frequency-presence-penalty.js';
export { logSoftmaxTopK, unpackLogprobs } from './ops/log-softmax-top-k.js';
export { logitBias, logitBiasRow } from './ops/logit-bias.js';
export { accumulateLogprobs } from './ops/accumulate-logprobs.js';
export { logSoftmaxAtMax } from './ops/log-softmax-at-max.js';
export type { RowLogprobs, TokenLogprob } from './reference/log-softmax-top-k.js';
export type { SampleOptions } from './reference/sample.js';
export { addmm, linear, linearAdd, matmul, matmulPlan } from './ops/matmul.js';
export type { MatmulPlan } from './backend/matmul-plan.js';
export { readyMatmul, tuneMatmul, matmulTuningReport, matmulSplitBytes, checkMatmulCandidates, type CheckOptions } from './tuning.js';
export type { MatmulCandidate } from './tuning.js';
export type { KernelRewrite } from './backend/matmul-encode.js';
export { matmulCandidates, decodeCandidates, setMatmulVariant, variantName } from './matmul-choice.js';
export type { MatmulVariant, DecodeVariant, MatmulChoice, ForceOptions, MatmulTuningReport, CandidateReport, SplitReport } from './matmul-choice.js';
export { Profiler, profile } from './profiler.js';
export type { KernelTime, ProfileReport } from './profiler.js';
export { attention, composedAttentionFor } from './ops/attention.js';
export type { AttentionOptions } from './ops/attention.js';
export { readyAttention } from './ops/attention-ready.js';
export type { ReadyAttentionOptions, AttentionReadiness } from './ops/attention-ready.js';
export { refAttention, refAttentionBackward } from './reference/attention.js';
export type { RefAttentionOptions } from './reference/attention.js';
export { reshape, permute, transpose, slice, expand, contiguous, cat } from './ops/views.js';
export { where, maskedFill, cast } from './ops/select.js';
export { copyInto } from './ops/inplace.js';
export { defineOp } from './ops/define.js';
export type { OpDef, OpContext, Op } from './ops/define.js';

// Optimizers and learning-rate schedules
export { AdamW } from './optim/adamw.js';
export type { AdamWOptions } from './optim/adamw.js';
export { SGD } from './optim/sgd.js';
export type { SGDOptions } from './optim/sgd.js';
export { Optimizer } from './optim/optimizer.js';
export type { ParamGroup, OptimizerStateDict, OptionValue, FlaggedStep } from './optim/optimizer.js';
export { clipGradNorm } from './optim/clip.js';
export { GradScaler, nextScaleState, unscaleGradients } from './optim/grad-scaler.js';
export type { GradScalerOptions, GradScalerState, ScaledOptimizer } from './optim/grad-scaler.js';
export {
  LambdaLR, linearWarmupDecay, cosineWarmupDecay, constantWarmup, cosineHardRestartsWarmupDecay, polynomialWarmupDecay, linearScheduleWithWarmup, cosineScheduleWithWarmup,
} from './optim/schedule.js';
export type { LrLambda, LrSchedulable } from './optim/schedule.js';
export { roundedCos } from './optim/round-cos.js';
export { roundedPow } from './optim/round-pow.js';
export { refAdamWState, refAdamWStep, refSgdStep, refClipGradNorm } from './reference/optim.js';
export type { RefAdamWOptions, RefAdamWState, RefSgdOptions, RefSgdState } from './reference/optim.js';

// CPU references of the core ops (float64 loops written from the math)
export { refTensor, refZeros, refNumel } from './reference/ref-tensor.js';
export type { RefTensor } from './reference/ref-tensor.js';
export {
  refBroadcastShape, refBroadcastTo, refSumToShape,
  refAdd, refAddBackward, refSub, refSubBackward, refMul, refMulBackward, refDiv, refDivBackward, refNeg, refNegBackward,
  refExp, refExpBackward, refLog, refLogBackward, refSqrt, refSqrtBackward, refRsqrt, refRsqrtBackward,
  refPow, refPowBackward, refSilu, refSiluBackward, refRelu, refReluBackward,
  refWhere, refWhereBackward, refRoundToF16, refCast, refCastBackward,
} from './reference/elementwise.js';
export { refSum, refSumBackward, refMean, refMeanBackward, refMax, refMaxBackward } from './reference/reduce.js';
export { refAddmm, refBiasBackward, refMatmul, refMatmulBackward } from './reference/matmul.js';
export {
  refReshape, refReshapeBackward, refPermute, refPermuteBackward, refTranspose, refSlice, refSliceBackward,
  refExpand, refExpandBackward, refCat, refCatBackward,
} from './reference/views.js';

// Neural-network ops: softmax, rmsNorm, rope, embedding, crossEntropy, dropout, swiglu, and their CPU references
export { softmax, logSoftmax } from './ops/softmax.js';
export { rmsNorm } from './ops/rmsnorm.js';
export { rope } from './ops/rope.js';
export { ropeAttentionScaling, ropeInvFreq } from './ops/rope-scaling.js';
export type { RopeFrequencies, RopeScaling, RopeSpec } from './ops/rope-scaling.js';
export { ropeCache } from './ops/rope-cache.js';
export { embedding } from './ops/embedding.js';
export { crossEntropy } from './ops/cross-entropy.js';
export type { CrossEntropyOptions, Reduction } from './ops/cross-entropy.js';
export { dropout } from './ops/dropout.js';
export { swiglu } from './ops/swiglu.js';
export { fusedLinear, fusedLinearAdd, fusedLinearSwiglu, fusedLinearFits, fusedLinearPreferred, fusedLoraAdd, fusedLoraAddFits, setFusedLinearPreferred, FUSED_LINEAR_MAX_ROWS } from './ops/fused-linear.js';
export type { FusedAdapter, FusedLora, FusedNorm, FusedWeight } from './ops/fused-linear.js';
export { checkFusedLinear, readyFusedLinear, type FusedLinearCheck } from './ops/fused-linear-check.js';
export { hash32 } from './random.js';
export { refSoftmax, refSoftmaxBackward, refLogSoftmax, refLogSoftmaxBackward } from './reference/softmax.js';
export { refRmsNorm, refRmsNormBackward } from './reference/rmsnorm.js';
export { refRope, refRopeAttentionScaling, refRopeBackward, refRopeInvFreq } from './reference/rope.js';
export { refRopeCache } from './reference/rope-cache.js';
export { refFusedLinear, refFusedLinearAdd, refFusedLinearSwiglu } from './reference/fused-linear.js';
export type { RefFusedAdapter, RefFusedExtras } from './reference/fused-linear.js';
export { refEmbedding, refEmbeddingBackward } from './reference/embedding.js';
export { refCrossEntropy, refCrossEntropyBackward } from './reference/cross-entropy.js';
export type { RefReduction } from './reference/cross-entropy.js';
export { refDropout, refDropoutBackward, refDropoutKeep } from './reference/dropout.js';
export { refSwiglu, refSwigluBackward } from './reference/swiglu.js';
export { refSampleProbs, refSampleRow, refSampleLogits, refSampledLogprob } from './reference/sample.js';
export { refRepetitionPenalty } from './reference/repetition-penalty.js';
export { refFrequencyPresencePenalty } from './reference/frequency-presence-penalty.js';
export { refLogSoftmaxTopK } from './reference/log-softmax-top-k.js';
export { refLogitBias } from './reference/logit-bias.js';
export { refAccumulateLogprobs } from './reference/accumulate-logprobs.js';
export { refLogSoftmaxAtMax } from './reference/log-softmax-at-max.js';

// Quantized frozen weights: int8 (per-row absmax) and NF4 (QLoRA, double-quantized), host formats and references
export {
  NF4_CODE, NF4_BLOCK, NF4_ABSMAX_BLOCK, DYNAMIC_CODE, nearestCode, nf4CodeAt,
  quantizeInt8, dequantizeInt8, quantizeNf4, dequantizeNf4, nf4Absmax, quantizeBlockwise8, quantizeHost, quantizeHostF16, dequantizeHost, quantizedFromFinite,
} from './quant/formats.js';
export { refQuantizeInt8, refQuantizeNf4, refQuantizeBlockwise8 } from './reference/quant.js';
export type { Int8Weight, Nf4Weight, QuantFormat, HostQuantized } from './quant/formats.js';
export { QuantizedWeight } from './quant/weight.js';
export { openQuantizePool, defaultQuantizeThreads, maxDefaultQuantizeThreads } from '#quant-pool';
export type { QuantizePool } from './quant/pool.js';
export { quantizedMatmul } from './ops/quantized-matmul.js';

// Errors
export { TensorError, ShapeError, DTypeError, DisposedError, DeviceError, ValueError, AutogradError } from './errors.js';
