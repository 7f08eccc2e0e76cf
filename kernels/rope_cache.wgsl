// Decoding's attention inputs in one pass: RoPE (Hugging Face rotate_half, as kernels/rope.wgsl) on the
// new queries and keys, the rotated keys and the values written straight into the KV cache. For the M =
// B T new rows of the projections q [M, H D], k, v [M, Hkv D] (any row stride and offset, elements):
// qo[b, hq, t] = rope(q[m, hq]); keys[b, hk, past + t] = rope(k[m, hk]); values[b, hk, past + t] =
// v[m, hk], with m = b T + t, pos = positions[b pos_bstride + t], and c, s as in rope.wgsl (host f32
// tables rounded to T, here one table of (cos, sin) pairs; GPU cos/sin past the table).
// Bindings: 0 Params (uniform); 1 q, 2 k, 3 v: array<T> read (may be one buffer); 4 positions: array<i32>
// read; 5 table: array<vec2<f32>> read ([rows, h] of (cos, sin), then a row of (inv_freq, attention factor)); 6 qo:
// array<T> read_write ([B, H, T, D]); 7 keys, 8 values: array<T> read_write ([B, Hkv, L, D]).
// Workgroup: 256 threads, one (m, head slot, j < h) each; 2-D grid.
alias T = f32;

//! params
//!   pairs: u32
//!   T_len: u32
//!   h: u32
//!   H: u32
//!   Hkv: u32
//!   L: u32
//!   past: u32
//!   q_offset: u32
//!   q_row: u32
//!   k_offset: u32
//!   k_row: u32
//!   v_offset: u32
//!   v_row: u32
//!   pos_bstride: u32
//!   table_rows: u32
//! bindings
//!   q: array<T> read
//!   k: array<T> read
//!   v: array<T> read
//!   positions: array<i32> read
//!   table: array<vec2<f32>> read
//!   qo: array<T> read_write
//!   keys: array<T> read_write
//!   values: array<T> read_write

const T_IS_F16: bool = {{T_IS_F16}};
{{include round_to_t}}
{{include rope_rotate}}

// (cos, sin) at element e of the host's tables.
fn table_cs(e: u32) -> vec2<f32> {
  return table[e];
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.pairs) { return; }
  let j = i % p.h;
  let slots = p.H + 2u * p.Hkv;
  let slot = (i / p.h) % slots;
  let m = i / (p.h * slots);
  let t = m % p.T_len;
  let b = m / p.T_len;
  let D = 2u * p.h;
  if (slot >= p.H + p.Hkv) {
    let hk = slot - p.H - p.Hkv;
    let src = p.v_offset + m * p.v_row + hk * D;
    let dst = ((b * p.Hkv + hk) * p.L + p.past + t) * D;
    values[dst + j] = v[src + j];
    values[dst + j + p.h] = v[src + j + p.h];
    return;
  }
  let cs = rope_cs(positions[b * p.pos_bstride + t], j);
  if (slot < p.H) {
    let src = p.q_offset + m * p.q_row + slot * D;
    let y = rope_rotate(q[src + j], q[src + j + p.h], cs, 1.0);
    let dst = ((b * p.H + slot) * p.T_len + t) * D;
    qo[dst + j] = y.x;
    qo[dst + j + p.h] = y.y;
  } else {
    let hk = slot - p.H;
    let src = p.k_offset + m * p.k_row + hk * D;
    let y = rope_rotate(k[src + j], k[src + j + p.h], cs, 1.0);
    let dst = ((b * p.Hkv + hk) * p.L + p.past + t) * D;
    keys[dst + j] = y.x;
    keys[dst + j + p.h] = y.y;
  }
}
