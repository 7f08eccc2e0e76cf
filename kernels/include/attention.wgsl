// Shared by the attention kernels: the uniform Params block (one packer fills it for every kernel of
// a call) and the helpers that read the key padding mask and the causal limit.
//! params
//!   B: u32
//!   Hq: u32
//!   Hkv: u32
//!   T: u32
//!   S: u32
//!   D: u32
//!   D4: u32
//!   BK: u32
//!   causal: u32
//!   has_mask: u32
//!   mask_bits: u32
//!   mask_offset: u32
//!   scale: f32
//!   kv_offset: i32
//!   n_split: u32
//!   split_len: u32
