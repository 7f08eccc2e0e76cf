// AdamW step, fused (torch.optim.AdamW with amsgrad off), per element i < numel:
//   p = p * (1 - lr * wd)                         decoupled weight decay, before the update
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
// with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) computed on the host per step.
// Nothing is written where found[found_offset] is nonzero (the loss scaler's inf/NaN flag), as torch's fused
// AdamW skips on found_inf.
// Bindings: 0 Params (uniform); 1 param: array<f32> read_write; 2 grad: array<TG> read;
// 3 m: array<f32> read_write; 4 v: array<f32> read_write (m, v contiguous from 0, numel elements);
// 5 found: array<u32> read.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias TG = f32;

//! params
//!   numel: u32
//!   p_offset: u32
//!   g_offset: u32
//!   decay: f32
//!   beta1: f32
//!   beta2: f32
//!   eps: f32
//!   step_size: f32
//!   bc2_sqrt: f32
//!   found_offset: u32
//! bindings
//!   param: array<f32> read_write
//!   grad: array<TG> read
//!   m: array<f32> read_write
//!   v: array<f32> read_write
//!   found: array<u32> read

{{include elementwise}}

fn element(i: u32) {
  if (found[p.found_offset] != 0u) { return; }
  let g = f32(grad[p.g_offset + i]);
  let w = param[p.p_offset + i] * p.decay;
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  param[p.p_offset + i] = w - p.step_size * mi / (sqrt(vi) / p.bc2_sqrt + p.eps);
}
