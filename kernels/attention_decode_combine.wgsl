// Merges the key splits of attention_decode_partial: with M = max_sp m_sp and w_sp = exp(m_sp - M),
// o[r] = sum_sp w_sp acc_sp / L and lse[r] = M + log L where L = sum_sp w_sp l_sp; a row whose
// splits saw no key (L == 0) gets o = 0 and lse = -inf.
// Bindings: 0 Params (uniform); 1 part_acc [B * Hq, n_split, D4]: vec4<f32> read;
// 2 part_ml [B * Hq, n_split, 2]: f32 read; 3 o [B, Hq, 1, D]: T read_write; 4 lse [B, Hq, 1]: f32 read_write.
// Workgroup: 64 threads, one (row, 4-column chunk) each; 2-D grid beyond 65535 workgroups.
alias T = f32;

//! params from attention
//! bindings
//!   part_acc: array<vec4<f32>> read
//!   part_ml: array<f32> read
//!   o: array<{{ELEM}}> read_write
//!   lse: array<f32> read_write

fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

{{include attention_v1}}

const WG: u32 = 64u;
{{include attention_parts}}

// A thread per vec4 column c of each row.
fn parts() -> u32 { return p.D4; }

fn part(r: u32, c: u32) {
  let first = r * p.n_split;
  var mx = -3.0e38;
  for (var sp = 0u; sp < p.n_split; sp++) { mx = max(mx, part_ml[2u * (first + sp)]); }
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var sp = 0u; sp < p.n_split; sp++) {
    let w = exp(part_ml[2u * (first + sp)] - mx);
    l += w * part_ml[2u * (first + sp) + 1u];
    acc += w * part_acc[(first + sp) * p.D4 + c];
  }
  var inv = 0.0;
  if (l > 0.0) { inv = 1.0 / l; }
  store_o(r * p.D + 4u * c, r * p.D + p.D, acc * inv);
  if (c == 0u) {
    var out = f32_from_bits(0xff800000u);
    if (l > 0.0) { out = mx + log(l); }
    lse[r] = out;
  }
}
