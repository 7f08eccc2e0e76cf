"""One LoRA training step of LLaMA in PyTorch, the peer of bench/train.bench.ts and bench/gpu.bench.ts.

Plain PyTorch (default, CPU): RMSNorm, rotate_half RoPE, causal attention, SwiGLU MLP, LoRA (r 8,
alpha 16, dropout 0.05) on q_proj and v_proj, next-token cross-entropy, clip to norm 1, AdamW on the
LoRA parameters. With --hf: transformers' LlamaForCausalLM with PEFT's LoRA (same settings) on the
--device (cuda), base weights in --dtype. --mode matmul times torch.matmul at M x K x N; --mode decode
times transformers' greedy generate per token (--hf). Prints one JSON line: {"tokens_per_s",
"ms_per_step", "params", "threads", "torch", ...}. --mode suite runs bench/gpu.bench.ts's items (matmuls,
then steps and decoding at --suite-layers) and --mode serve the items it reads from stdin, one a line
(`matmul f16 2048,4096,4096`, `step 2`, `decode 4`): each prints its JSON line, flushed, as soon as it
is measured, or {"item", "error"} where it failed.

    python3 bench/torch_step.py --dim 64 --layers 2 --heads 4 --kv-heads 2 --inter 172 --seq 256
    python3 bench/torch_step.py --hf --device cuda --dtype f16 --dim 4096 --layers 2 --heads 32 \
        --kv-heads 32 --inter 11008 --seq 256 --batch 8
    python3 bench/torch_step.py --mode matmul --device cuda --dtype f16 --mnk 2048,4096,4096
    printf 'matmul f32 64,64,64\nstep 2\n' | python3 bench/torch_step.py --mode serve
"""
import argparse
import gc
import json
import math
import re
import sys
import time

import torch
import torch.nn.functional as F


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


class LoraLinear(torch.nn.Module):
    """y = x W^T (+ dropout(x) A^T B^T * alpha / r when adapted)."""

    def __init__(self, inf, outf, r=0, alpha=16, dropout=0.05):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(outf, inf) * 0.02, requires_grad=False)
        self.r = r
        if r > 0:
            self.A = torch.nn.Parameter(torch.empty(r, inf).uniform_(-1 / math.sqrt(inf), 1 / math.sqrt(inf)))
            self.B = torch.nn.Parameter(torch.zeros(outf, r))
            self.scaling = alpha / r
            self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.r > 0:
            y = y + F.linear(F.linear(self.dropout(x), self.A), self.B) * self.scaling
        return y


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, dim, heads, kv_heads, inter):
        super().__init__()
        self.h, self.kvh, self.d = heads, kv_heads, dim // heads
        self.input_norm = RMSNorm(dim)
        self.q = LoraLinear(dim, heads * self.d, r=8)
        self.k = LoraLinear(dim, kv_heads * self.d)
        self.v = LoraLinear(dim, kv_heads * self.d, r=8)
        self.o = LoraLinear(heads * self.d, dim)
        self.post_norm = RMSNorm(dim)
        self.gate = LoraLinear(dim, inter)
        self.up = LoraLinear(dim, inter)
        self.down = LoraLinear(inter, dim)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = self.input_norm(x)
        q = self.q(h).view(B, T, self.h, self.d).transpose(1, 2)  # (B, H, T, D)
        k = self.k(h).view(B, T, self.kvh, self.d).transpose(1, 2)
        v = self.v(h).view(B, T, self.kvh, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.kvh != self.h:
            k = k.repeat_interleave(self.h // self.kvh, dim=1)
            v = v.repeat_interleave(self.h // self.kvh, dim=1)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(self.d)  # (B, H, T, T)
        s = s.masked_fill(mask, float('-inf'))
        y = F.softmax(s, dim=-1) @ v  # (B, H, T, D)
        x = x + self.o(y.transpose(1, 2).reshape(B, T, C))
        h2 = self.post_norm(x)
        return x + self.down(F.silu(self.gate(h2)) * self.up(h2))


class Llama(torch.nn.Module):
    def __init__(self, vocab, dim, layers, heads, kv_heads, inter, seq):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(vocab, dim) * 0.02, requires_grad=False)
        self.layers = torch.nn.ModuleList([Layer(dim, heads, kv_heads, inter) for _ in range(layers)])
        self.norm = RMSNorm(dim)
        self.lm_head = LoraLinear(dim, vocab)
        d = dim // heads
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        f = torch.outer(torch.arange(seq).float(), inv)
        emb = torch.cat((f, f), dim=-1)
        self.register_buffer('cos', emb.cos(), persistent=False)
        self.register_buffer('sin', emb.sin(), persistent=False)
        self.register_buffer('mask', torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1), persistent=False)
        for p in self.parameters():
            if p.dim() == 1:
                p.requires_grad_(False)

    def loss(self, ids):
        x = F.embedding(ids, self.embed)  # (B, T, C)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def median_ms(fn, steps, device):
    fn()  # warm-up, untimed
    sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1000


def hf_model(a, dtype):
    """transformers' LLaMA with the given dims (random weights) and PEFT's LoRA on q_proj, v_proj."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.inter, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, max_position_embeddings=2048)
    with torch.device(a.device):  # initialised where it runs: a 7B model's random init on the CPU takes minutes
        model = LlamaForCausalLM(cfg).to(dtype=dtype)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=['q_proj', 'v_proj'], task_type='CAUSAL_LM')
    model = get_peft_model(model, lora)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return model


def run_matmul(a, dtype):
    M, K, N = (int(x) for x in a.mnk.split(','))
    x = torch.randn(M, K, device=a.device, dtype=dtype)
    w = torch.randn(K, N, device=a.device, dtype=dtype)
    ms = median_ms(lambda: torch.matmul(x, w), a.steps, a.device)
    return {'ms': ms, 'tflops': 2 * M * K * N / ms / 1e9}


def run_decode(a, dtype):
    model = hf_model(a, dtype).eval()
    ids = torch.randint(3, a.vocab, (1, 16), device=a.device)
    with torch.no_grad():
        def gen(n):
            return lambda: model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        short = median_ms(gen(1), a.steps, a.device)
        long = median_ms(gen(33), a.steps, a.device)
    return {'ms_per_token': (long - short) / 32}


def run_step(a, dtype):
    if a.hf:
        model = hf_model(a, dtype)
    else:
        model = Llama(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.inter, a.seq).to(a.device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(3, a.vocab, (a.batch, a.seq), device=a.device)
    loss_of = (lambda ids: model(input_ids=ids, labels=ids).loss) if a.hf else model.loss

    def step():
        loss = loss_of(ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    if a.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    ms = median_ms(step, a.steps, a.device)
    out = {'tokens_per_s': a.batch * a.seq * 1000 / ms, 'ms_per_step': ms, 'params': sum(p.numel() for p in model.parameters())}
    if a.device == 'cuda':
        out['peak_gib'] = torch.cuda.max_memory_allocated() / 2**30
    del model, opt
    return out


def run_item(a, item):
    """One item of --mode suite or serve: `matmul DTYPE M,K,N`, `step LAYERS` (a LoRA step with transformers +
    PEFT) or `decode LAYERS` (transformers' greedy generate, at most 3 timed runs)."""
    import copy
    kind, *rest = item.split()
    b = copy.copy(a)
    if kind == 'matmul' and len(rest) == 2 and rest[0] in ('f16', 'f32') and re.fullmatch(r'\d+,\d+,\d+', rest[1]):
        b.mnk = rest[1]
        return run_matmul(b, torch.float16 if rest[0] == 'f16' else torch.float32)
    if kind in ('step', 'decode') and len(rest) == 1 and rest[0].isdigit():
        b.layers = int(rest[0])
        b.hf = True
        if kind == 'step':
            return run_step(b, torch.float16)
        b.steps = min(b.steps, 3)
        return run_decode(b, torch.float16)
    raise ValueError(f'unknown item {item!r}: give "matmul f16|f32 M,K,N", "step LAYERS" or "decode LAYERS"')


def emit(a, item, info):
    """Runs one item and prints its JSON line at once (flushed), or {"item", "error"} if it failed."""
    try:
        out = {'item': item, **run_item(a, item), **info}
    except Exception as e:  # one failed item (out of memory, a missing package) must not end the others
        out = {'item': item, 'error': f'{type(e).__name__}: {e}'.strip()[:500]}
    gc.collect()
    if a.device == 'cuda':
        torch.cuda.empty_cache()
    print(json.dumps(out), flush=True)


def run_suite(a, info):
    """--mode suite: bench/gpu.bench.ts's PyTorch rows in one process, one JSON line each as it finishes."""
    for dt in ('f16', 'f32'):
        for mnk in a.suite_mnk.split(';'):
            emit(a, f'matmul {dt} {mnk}', info)
    for layers in a.suite_layers.split(','):
        emit(a, f'step {layers}', info)
        emit(a, f'decode {layers}', info)


def serve(a, info):
    """--mode serve: first a line {"ready": true, "hf": ...}, then one JSON line per item read from stdin (one
    item a line, as run_item takes them), until stdin closes."""
    try:
        import transformers  # noqa: F401
        import peft  # noqa: F401
        info_hf = {'hf': True}
    except Exception as e:
        info_hf = {'hf': False, 'hf_error': f'{type(e).__name__}: {e}'.strip()[:300]}
    print(json.dumps({'ready': True, **info_hf, **info}), flush=True)
    for line in sys.stdin:
        if line.strip():
            emit(a, line.strip(), info)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vocab', type=int, default=32000)
    ap.add_argument('--dim', type=int, default=64)
    ap.add_argument('--layers', type=int, default=2)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--kv-heads', type=int, default=2)
    ap.add_argument('--inter', type=int, default=172)
    ap.add_argument('--seq', type=int, default=256)
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: one per CPU core)')
    ap.add_argument('--device', default='cpu', help='cpu or cuda')
    ap.add_argument('--dtype', default='f32', help='base weights: f32 or f16 (LoRA parameters stay f32)')
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--hf', action='store_true', help='transformers + PEFT instead of the plain model')
    ap.add_argument('--mode', default='step', help='step, matmul, decode, suite or serve')
    ap.add_argument('--suite-mnk', default='2048,4096,4096;2048,4096,11008;2048,11008,4096;4096,4096,4096')
    ap.add_argument('--suite-layers', default='2,4,32')
    ap.add_argument('--mnk', default='2048,4096,4096', help='--mode matmul: M,K,N')
    a = ap.parse_args()
    import os
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    dtype = torch.float16 if a.dtype == 'f16' else torch.float32
    if a.device == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
    info = {'threads': torch.get_num_threads(), 'torch': torch.__version__, 'device': a.device}
    if a.device == 'cuda':
        if not torch.cuda.is_available():
            print(json.dumps({'ready': False, 'error': f'torch {torch.__version__}: torch.cuda.is_available() is false'}), flush=True)
            sys.exit(1)
        info['gpu'] = torch.cuda.get_device_name()
    if a.mode == 'matmul':
        print(json.dumps({**run_matmul(a, dtype), **info}))
        return
    if a.mode == 'decode':
        print(json.dumps({**run_decode(a, dtype), **info}))
        return
    if a.mode == 'suite':
        run_suite(a, info)
        return
    if a.mode == 'serve':
        serve(a, info)
        return
    print(json.dumps({**run_step(a, dtype), **info}))


if __name__ == '__main__':
    main()
