// Shared by the matmuls that read any strides (v1, v2, v4, sgmat): the uniform Params block, in elements
// (bias_offset, addend_offset: where the bias's and the addend's element 0 lie in their bindings; alpha: the
// addend epilogue's factor, include/matmul_addend.wgsl).
//! params
//!   M: u32
//!   N: u32
//!   K: u32
//!   batch_rank: u32
//!   a_offset: u32
//!   b_offset: u32
//!   a_sm: u32
//!   a_sk: u32
//!   b_sk: u32
//!   b_sn: u32
//!   bias_offset: u32
//!   addend_offset: u32
//!   alpha: f32
//!   batch_shape: vec4<u32>
//!   a_batch_strides: vec4<u32>
//!   b_batch_strides: vec4<u32>
