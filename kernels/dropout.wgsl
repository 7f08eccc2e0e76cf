// Dropout with a counter-based keep mask: h = hash32(seed, i) (the host's hash32 in random.ts, in
// integer ops only); keep when h / 2^32 >= p, i.e. h >= threshold = ceil(p * 2^32) (none kept when
// drop_all is 1); y[i] = keep ? x[i] * scale : 0 with scale = 1 / (1 - p). The backward applies the
// same kernel, seed and threshold to dy.
// Bindings: 0 Params (uniform); 1 x: array<T> read (contiguous); 2 y: array<T> read_write.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//!   seed: u32
//!   threshold: u32
//!   drop_all: u32
//!   scale: f32
//! bindings
//!   x: array<T> read
//!   y: array<T> read_write

fn hash32(seed: u32, counter: u32) -> u32 {
  var z = seed * 0x9e3779b9u + counter * 0x85ebca6bu + 0x6a09e667u;
  z = (z ^ (z >> 16u)) * 0x85ebca6bu;
  z = (z ^ (z >> 13u)) * 0xc2b2ae35u;
  return z ^ (z >> 16u);
}

{{include elementwise}}

fn element(i: u32) {
  let keep = p.drop_all == 0u && hash32(p.seed, i) >= p.threshold;
  // a multiply, not a select, so a dropped NaN or infinity gives NaN as in torch (x * mask * scale)
  y[i] = T(f32(x[i]) * select(0.0, p.scale, keep));
}
