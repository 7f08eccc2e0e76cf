// Shared by the matrix-vector kernels (matvec, matvec.v2): the uniform Params block, in vec4 units.
//! params
//!   N: u32
//!   K: u32
//!   x_offset: u32
//!   w_offset: u32
//!   w_row: u32
//!   batch_rank: u32
//!   bias_offset: u32
//!   batch_shape: vec4<u32>
//!   x_batch_strides: vec4<u32>
//!   w_batch_strides: vec4<u32>
