/// Shared by the RoPE kernels (rope, rope_cache): the (cos, sin) of a pair at a position, and the
/// rotation of the pair, Hugging Face LLaMA's rotate_half with its roundings to T. The kernel includes
/// round_to_t first.
// (cos, sin) of pair j < h at position pos: the host's f32 table where it has the position (the kernel's
// table_cs(e), e = pos h + j), else cos and sin of pos * inv_freq[j] computed here times the attention
// factor, the row after the table holding (inv_freq[j], attention factor) (the host's inverse frequencies,
// scaled as the table is, and the factor the table's cos and sin carry).
fn rope_cs(pos: i32, j: u32) -> vec2<f32> {
  if (pos >= 0 && u32(pos) < p.table_rows) { return table_cs(u32(pos) * p.h + j); }
  let tail = table_cs(p.table_rows * p.h + j);
  let angle = f32(pos) * tail.x;
  return vec2<f32>(cos(angle), sin(angle)) * tail.y;
}

// x1 = x[j] and x2 = x[j + h] rotated by cs (rounded to T as HF casts the tables; sign -1: the inverse
// rotation): (x1 c - x2 s, x2 c + x1 s), each product rounded to T (round_to_t: compilers fold f32(T(v))).
fn rope_rotate(x1: T, x2: T, cs: vec2<f32>, sign: f32) -> vec2<T> {
  let c = round_to_t(cs.x);
  let s = round_to_t(cs.y) * sign;
  let a = f32(x1);
  let b = f32(x2);
  return vec2<T>(T(round_to_t(a * c) - round_to_t(b * s)), T(round_to_t(b * c) + round_to_t(a * s)));
}
