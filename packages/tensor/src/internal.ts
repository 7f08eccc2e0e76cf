// @huatuo/tensor/internal: what this repository's benchmarks, tests and sibling packages use below
// the public API: the live runtime, the kernel specs and generated WGSL, op contexts, attention's switches.
// Not a stable surface: it follows the kernels, and users need none of it to train.
/// <reference types="@webgpu/types" preserve="true" />

// The runtime: device, pipelines, buffer pool, readback pacing and dispatch counters of the initialized adapter
export { getRuntime } from './backend/context.js';
export { Runtime } from './backend/runtime.js';
export { BufferPool, maxReuseSize, sizeClass } from './backend/pool.js';
export type { PoolStats } from './backend/pool.js';
export type { CompiledKernel, Dispatch } from './backend/runtime.js';
export { WaitPacer } from './backend/wait-pacing.js';
export type { WaitTicket } from './backend/wait-pacing.js';

// Kernels as data: specs, uniform packers, the #define step, the generated WGSL and Params layouts
export { kernelSpecs, packParams, preprocess, variantKey } from './kernels.js';
export type { BindingSpec, KernelSpec, Defines } from './kernels.js';
export { wgslSources, paramLayouts, specifiedKernels } from './kernels.generated.js';
export type { WgslName, ParamField, ParamLayout, ParamStruct, ParamValues } from './kernels.generated.js';

// Matmul planning: the most f32 partial products a split along k may allocate (the memory plan counts them)
export { splitFor, splitPartialBound } from './backend/matmul-plan.js';
// The product of any operands with linear's bias epilogue (tests run every variant's epilogue through it)
export { runMatmul } from './ops/matmul.js';

// Op definitions: a fresh context for running another op's forward and backward directly (fused ops)
export { opContext } from './ops/define.js';

// Elementwise kernels: the cap on their grid-stride launches (tests reach the loop's tails with it)
export { elementwiseGroups, setElementwiseGroupCap } from './ops/launch.js';

// Attention: which kernel version runs, and the v2 kernels' register layout on an adapter
export { attentionKernelFor, setAttentionKernel } from './ops/attention.js';
export type { AttentionKernel } from './ops/attention.js';
export { setV2Creation, setV2Rewrite } from './ops/attention-choice.js';
export type { AttentionV2Kernel, V2Creation } from './ops/attention-choice.js';
export { setV2KeepRows, v2Layout, v2PrivateValues } from './kernelgen/attention.js';
export type { V2Kernel, V2Layout } from './kernelgen/attention.js';

// Fused decode products: rewriting their WGSL (tests show the on-device check refusing a wrong kernel)
export { setFusedLinearRewrite } from './ops/fused-linear-launch.js';

// Quantization: the decision tables the host quantizers find codes with (scripts/check-quant-tables.ts checks them)
export { NF4_BUCKETS_PER_UNIT, TABLE_RANGE, dynamicCodeOf, dynamicThresholds, nf4Table } from './quant/codes.js';

// Quantized products: which kernels decoding's few rows run, their on-device check, and why a device refused them
export { checkQuantizedDecode, quantizedDecodeRefusals, setQuantizedDecode } from './ops/quantized-decode.js';
export type { Nf4Table, QuantizedDecodePath } from './ops/quantized-decode.js';

// Sampling: the threads per row of sampleLogits (tests reach the GPUs' width on CPU drivers)
export { setSampleWidth } from './ops/sample.js';

// The matmul tuning cache: its key for an adapter, forgetting the choice in memory, and setting an entry.
export { resetTuning, tuningCacheKey } from './matmul-choice.js';
export { setTuningCacheEntry, tuningCachePath } from '#platform';
