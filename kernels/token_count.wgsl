// Counts each row's picked token: counts[b, ids[b]] += 1, so that the frequency and presence penalties of
// the next step see it (rows own distinct counts: no atomics).
// Bindings: 0 Params (uniform); 1 ids: array<i32> read [B]; 2 counts: array<i32> read_write [B, V].
// Workgroup: 64 threads, one per row.
//! params
//!   B: u32
//!   V: u32
//! bindings
//!   ids: array<i32> read
//!   counts: array<i32> read_write

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.x;
  if (b >= p.B) { return; }
  counts[b * p.V + u32(ids[b])] += 1;
}
