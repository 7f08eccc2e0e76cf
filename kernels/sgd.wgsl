// SGD step (torch.optim.SGD), per element i < numel:
//   d = g + wd * p
//   with momentum: buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d;
//                  d = d + momentum * buf (nesterov) or d = buf
//   p = p - lr * d
// Bindings: 0 Params (uniform); 1 param: array<f32> read_write; 2 grad: array<TG> read;
// 3 buf: array<f32> read_write (numel elements, contiguous; unread without momentum).
// Workgroup: 256 threads, one element each; 2-D grid beyond 65535 workgroups.
alias TG = f32;

struct Params {
  numel: u32,
  p_offset: u32,
  g_offset: u32,
  // 0: no momentum; 1: momentum, first step; 2: momentum, later steps.
  momentum_mode: u32,
  lr: f32,
  weight_decay: f32,
  momentum: f32,
  dampening: f32,
  nesterov: u32,
}

@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<TG>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= u.numel) { return; }
  let p = param[u.p_offset + i];
  var d = f32(grad[u.g_offset + i]) + u.weight_decay * p;
  if (u.momentum_mode != 0u) {
    var b = d;
    if (u.momentum_mode == 2u) { b = u.momentum * buf[i] + (1.0 - u.dampening) * d; }
    buf[i] = b;
    if (u.nesterov != 0u) { d = d + u.momentum * b; } else { d = b; }
  }
  param[u.p_offset + i] = p - u.lr * d;
}
