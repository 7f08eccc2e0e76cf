// Adds a decoding step's log-probabilities to the running sums of the rows it is active for, in place, and
// keeps each such row's sum before the new term: before[b] = active[b] ? total[b] : before[b], then
// total[b] += active[b] ? logprobs[b] : 0 (one f32 add, an inactive row's sum plus 0 whatever its logprob).
// Bindings: 0 Params (uniform); 1 logprobs: array<f32> read [B]; 2 active_rows: array<f32> read [B];
// 3 total: array<f32> read_write [B]; 4 before: array<f32> read_write [B].
// Workgroup: 64 threads, one per row.
//! params
//!   B: u32
//! bindings
//!   logprobs: array<f32> read
//!   active_rows: array<f32> read
//!   total: array<f32> read_write
//!   before: array<f32> read_write

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.x;
  if (b >= p.B) { return; }
  // active_rows (`active` is reserved in WGSL) as torch's bool() and where's condition: nonzero is true, NaN
  // included, -0 not; by its bits, since compilers may fold NaN != 0 to false.
  let on = (bitcast<u32>(active_rows[b]) & 0x7fffffffu) != 0u;
  let sum = total[b];
  if (on) { before[b] = sum; }
  total[b] = sum + select(0.0, logprobs[b], on);
}
