#!/usr/bin/python3
"""Eager PyTorch speed anchor for `evopress ppl`: an fp32 Hugging Face-equivalent Llama forward plus
log-softmax NLL over a batch of 32 x 256 tokens (--batch), 2 threads, best of N runs, wall-clock
and per CPU second.

Usage: /usr/bin/python3 bench/pytorch_forward.py [MODEL_DIR] [--runs 3] [--batch 32]
Needs Debian's python3-torch (apt-get install python3-torch); reads safetensors with numpy.
"""
import argparse, json, math, struct, time

import numpy as np
import torch


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            f.seek(base + b)
            raw = f.read(e - b)
            if info["dtype"] == "BF16":
                a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] == "F16":
                a = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
            else:
                a = np.frombuffer(raw, dtype=np.float32).copy()
            out[name] = torch.from_numpy(a.reshape(info["shape"]).copy())
        return out


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward_nll(W, cfg, ids):
    B, T = ids.shape
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2).float() / hd))
    fr = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat((fr, fr), -1)
    cos, sin = emb.cos(), emb.sin()
    x = W["model.embed_tokens.weight"][ids]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, nh, hd).transpose(1, 2)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + g @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    logits = x @ head.T
    lp = torch.log_softmax(logits[:, :-1], dim=-1)
    return -lp.gather(-1, ids[:, 1:, None]).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="../shared/models/llama-pd-11m")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32, help="sequences of 256 tokens (e.g. 4 at 1B shapes)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(a.model + "/config.json"))
    W = load_safetensors(a.model + "/model.safetensors")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg["vocab_size"], (a.batch, 256), generator=g)
    best, best_cpu = float("inf"), float("inf")
    with torch.no_grad():
        for _ in range(a.runs):
            t, c = time.perf_counter(), time.process_time()
            forward_nll(W, cfg, ids)
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
    n = a.batch * 256
    # Per CPU second (user + system of all threads): comparable on a machine other jobs load.
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "tokens": n,
                      "seconds": best, "tokens_per_second": n / best,
                      "cpu_seconds": best_cpu, "tokens_per_cpu_second": n / best_cpu}))


if __name__ == "__main__":
    main()
