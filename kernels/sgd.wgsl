// SGD step (torch.optim.SGD), per element i < numel:
//   d = g + wd * p
//   with momentum: buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d;
//                  d = d + momentum * buf (nesterov) or d = buf
//   p = p - lr * d
// Nothing is written where found[found_offset] is nonzero (the loss scaler's inf/NaN flag).
// Bindings: 0 Params (uniform); 1 param: array<f32> read_write; 2 grad: array<TG> read;
// 3 buf: array<f32> read_write (numel elements, contiguous; unread without momentum); 4 found: array<u32> read.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias TG = f32;

//! params
//!   numel: u32
//!   p_offset: u32
//!   g_offset: u32
//!   momentum_mode: u32  // 0: no momentum; 1: momentum, first step; 2: momentum, later steps.
//!   lr: f32
//!   weight_decay: f32
//!   momentum: f32
//!   dampening: f32
//!   nesterov: u32
//!   found_offset: u32
//! bindings
//!   param: array<f32> read_write
//!   grad: array<TG> read
//!   buf: array<f32> read_write
//!   found: array<u32> read

{{include elementwise}}

fn element(i: u32) {
  if (found[p.found_offset] != 0u) { return; }
  let w = param[p.p_offset + i];
  var d = f32(grad[p.g_offset + i]) + p.weight_decay * w;
  if (p.momentum_mode != 0u) {
    var b = d;
    if (p.momentum_mode == 2u) { b = p.momentum * buf[i] + (1.0 - p.dampening) * d; }
    buf[i] = b;
    if (p.nesterov != 0u) { d = d + p.momentum * b; } else { d = b; }
  }
  param[p.p_offset + i] = w - p.lr * d;
}
