// NF4 double quantization undone for one product: absmax[b] = dyn[qabs byte b] * scales[b / 256] + offset,
// the f32 absmax of each block of 64 weights (bitsandbytes' dequantize_blockwise of the absmaxes plus their
// mean), computed by include/nf4_double_quant.wgsl as matvec_nf4 computes it in place. qabs holds 4 byte
// codes per u32 word (byte j of word i is block 4i + j); dyn is the 256-value dynamic map. One thread per
// block; 2-D grid beyond 65535 workgroups.

//! params
//!   blocks: u32
//!   offset: f32         // mean absmax, subtracted before the absmaxes were quantized
//! bindings
//!   qabs: array<u32> read
//!   scales: array<f32> read
//!   dyn: array<f32> read
//!   absmax: array<f32> read_write

{{include nf4_double_quant}}

fn nf4_block_absmax(b: u32) -> f32 {
  return nf4_absmax_of(b, qabs[b / 4u], scales[b / 256u], p.offset);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let b = gid.x + gid.y * nwg.x * 64u;
  if (b >= p.blocks) { return; }
  absmax[b] = nf4_block_absmax(b);
}
