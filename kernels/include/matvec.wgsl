// Shared by the matrix-vector kernels (matvec, matvec.v2): the uniform Params block, in vec4 units (the
// bias's and the addend's offsets in elements; alpha: the addend epilogue's factor, include/matmul_addend.wgsl).
//! params
//!   N: u32
//!   K: u32
//!   x_offset: u32
//!   w_offset: u32
//!   w_row: u32
//!   batch_rank: u32
//!   bias_offset: u32
//!   addend_offset: u32
//!   alpha: f32
//!   batch_shape: vec4<u32>
//!   x_batch_strides: vec4<u32>
//!   w_batch_strides: vec4<u32>
