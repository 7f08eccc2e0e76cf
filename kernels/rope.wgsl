// Rotary position embedding, Hugging Face LLaMA rotate_half convention, on an [N0, N1, T, D] tensor (N = N0 N1,
// the product of the leading dims) with h = D/2 and, for j < h, c = cos(pos * inv_freq[j]),
// s = sin(pos * inv_freq[j]), both times the attention factor (YaRN's; else 1), from the host-computed f32
// tables (rounded to T as HF casts them):
// out[n, t, j] = x[j] * c - x[j + h] * s; out[n, t, j + h] = x[j + h] * c + x[j] * s.
// sign = -1 applies the inverse rotation (the backward). pos = positions[(n / per_batch) * pos_bstride + t]
// (pos_bstride 0 for [T] positions). Positions outside the table fall back to GPU cos/sin of the angle.
// x and out are read and written through the strides of n0, n1 and t (elements; D is one apart), so a
// transposed view of heads needs no copy: x at x_offset + n0 xs_n0 + n1 xs_n1 + t xs_t, out likewise from 0.
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 positions: array<i32> read;
// 3 cos_t: array<f32> read ([rows + 1, h], row `rows` = inv_freq); 4 sin_t: array<f32> read ([rows + 1, h],
// row `rows` = the attention factor);
// 5 out: array<T> read_write.
// Workgroup: 256 threads, one (n, t, j) pair each; 2-D grid beyond 65535 workgroups.
alias T = f32;

//! params
//!   pairs: u32
//!   T_len: u32
//!   h: u32
//!   per_batch: u32
//!   pos_bstride: u32
//!   table_rows: u32
//!   sign: f32
//!   N1: u32
//!   x_offset: u32
//!   xs_n0: u32
//!   xs_n1: u32
//!   xs_t: u32
//!   os_n0: u32
//!   os_n1: u32
//!   os_t: u32
//! bindings
//!   x: array<T> read
//!   positions: array<i32> read
//!   cos_t: array<f32> read
//!   sin_t: array<f32> read
//!   out: array<T> read_write

const T_IS_F16: bool = {{T_IS_F16}};
{{include round_to_t}}
{{include rope_rotate}}

// (cos, sin) at element e of the host's tables.
fn table_cs(e: u32) -> vec2<f32> {
  return vec2<f32>(cos_t[e], sin_t[e]);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.pairs) { return; }
  let j = i % p.h;
  let nt = i / p.h;
  let t = nt % p.T_len;
  let n = nt / p.T_len;
  let pos = positions[(n / p.per_batch) * p.pos_bstride + t];
  let n0 = n / p.N1;
  let n1 = n % p.N1;
  let src = p.x_offset + n0 * p.xs_n0 + n1 * p.xs_n1 + t * p.xs_t;
  let dst = n0 * p.os_n0 + n1 * p.os_n1 + t * p.os_t;
  let y = rope_rotate(x[src + j], x[src + j + p.h], rope_cs(pos, j), p.sign);
  out[dst + j] = y.x;
  out[dst + j + p.h] = y.y;
}
