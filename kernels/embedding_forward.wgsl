// Embedding lookup: out[n, c] = table[ids[n], c] for contiguous ids [N] (i32) and table [V, C];
// an id outside [0, V) gives a row of zeros (ids with a host copy are checked before dispatch).
// Bindings: 0 Params (uniform); 1 ids: array<i32> read; 2 table: array<T> read; 3 out: array<T> read_write.
// Workgroup: 256 threads, one output element each; 2-D grid beyond 65535 workgroups.
alias T = f32;

//! params
//!   numel: u32
//!   C: u32
//!   V: u32
//! bindings
//!   ids: array<i32> read
//!   table: array<T> read
//!   out: array<T> read_write

{{include elementwise}}

fn element(i: u32) {
  let n = i / p.C;
  let c = i % p.C;
  let id = ids[n];
  var v = T(0.0);
  if (id >= 0 && u32(id) < p.V) { v = table[u32(id) * p.C + c]; }
  out[i] = v;
}
