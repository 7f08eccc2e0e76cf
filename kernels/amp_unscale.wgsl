// Unscales one gradient in place and flags non-finite values, as torch's _amp_foreach_non_finite_check_and_unscale_:
// found[0] |= 1 when g[offset + i] is inf or NaN (read from its f32 bits, which fast-math cannot fold away);
// g[offset + i] *= inv_scale, for i < numel.
// Bindings: 0 Params (uniform); 1 g: array<T> read_write; 2 found: array<atomic<u32>> read_write ([1]).
// Workgroup: 256 threads, one element each; 2-D grid beyond 65535 workgroups.
alias T = f32;

//! params
//!   numel: u32
//!   offset: u32
//!   inv_scale: f32
//! bindings
//!   g: array<T> read_write
//!   found: array<atomic<u32>> read_write

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.numel) { return; }
  let v = f32(g[p.offset + i]);
  if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
    atomicOr(&found[0], 1u);
  }
  g[p.offset + i] = T(v * p.inv_scale);
}
