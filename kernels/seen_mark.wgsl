// Marks each row's picked token in its bit mask: seen[b, ids[b] / 32] |= 1 << (ids[b] % 32), so that the
// repetition penalty of the next step sees it (rows own distinct words: no atomics).
// Bindings: 0 Params (uniform); 1 ids: array<i32> read [B]; 2 seen: array<u32> read_write [B, W].
// Workgroup: 64 threads, one per row.
//! params
//!   B: u32
//!   W: u32
//! bindings
//!   ids: array<i32> read
//!   seen: array<u32> read_write

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.x;
  if (b >= p.B) { return; }
  let t = u32(ids[b]);
  seen[b * p.W + t / 32u] |= 1u << (t % 32u);
}
