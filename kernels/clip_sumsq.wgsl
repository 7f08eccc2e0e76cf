// Partial sums of squares of one gradient, for the global L2 norm of clip_grad_norm:
// partial[base + w] = sum of g[offset + i]^2 over the elements i that workgroup w visits
// (i = w * 256 + lid, then strides of num_workgroups * 256). Accumulates in f32.
// Bindings: 0 Params (uniform); 1 g: array<T> read; 2 partial: array<f32> read_write.
// Workgroup: 256 threads, a tree reduction in workgroup memory; 1-D grid of at most 256 workgroups.
alias T = f32;

//! params
//!   numel: u32
//!   offset: u32
//!   base: u32
//! bindings
//!   g: array<T> read
//!   partial: array<f32> read_write

const WG: u32 = 256u;
{{include workgroup_reduce}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wid.x * WG + lid; i < p.numel; i += nwg.x * WG) {
    let x = f32(g[p.offset + i]);
    s = fma(x, x, s);
  }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { partial[p.base + wid.x] = total; }
}
