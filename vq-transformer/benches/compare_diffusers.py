"""Side-by-side forward benchmark: diffusers' Transformer2DModel vs vq-transformer.

Builds diffusers' Transformer2DModel with the ITHQ configuration and --layers blocks, fills it
with seeded random weights (N(0, 0.02), embeddings N(0, 1)), saves it as a diffusers folder
plus the inputs (batch 2, half the tokens masked, t = 50, L2-normalised 77x512 states) and
diffusers' f32 output, then alternates rounds of

    diffusers forward (torch, CPU, --threads threads) and
    cargo bench -p vq-transformer --bench forward -- --dir DIR --dtype D

for each dtype (f32, and bf16: diffusers computes in bf16, vq-transformer stores bf16 and
computes in f32 on the CPU), and prints a table. Needs a Python with reference/requirements.txt installed ($REFERENCE_PYTHON);
the Rust tests never need Python.

    $REFERENCE_PYTHON vq-transformer/benches/compare_diffusers.py --layers 2 --rounds 2
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from diffusers import Transformer2DModel
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ithq_model(layers):
    return Transformer2DModel(
        num_attention_heads=16,
        attention_head_dim=88,
        num_layers=layers,
        cross_attention_dim=512,
        attention_bias=True,
        sample_size=32,
        num_vector_embeds=4097,
        activation_fn="geglu-approximate",
        num_embeds_ada_norm=100,
        dropout=0.0,
    ).eval()


def flops(layers, b=2, n=1024, d=1408, l=77, c=512, k=4096):
    self_attn = 4 * 2 * b * n * d * d + 2 * 2 * b * n * n * d
    cross = 2 * 2 * b * n * d * d + 2 * 2 * b * l * c * d + 2 * 2 * b * n * l * d
    ff = 2 * 2 * b * n * d * 4 * d
    return (self_attn + cross + ff) * layers, 2 * b * n * d * k


def time_diffusers(model, x, states, t, reps):
    def full():
        return model(x, encoder_hidden_states=states, timestep=t).sample

    def blocks():
        h = model.latent_image_embedding(x)
        for blk in model.transformer_blocks:
            h = blk(h, encoder_hidden_states=states, timestep=t)
        return h

    out = {}
    with torch.inference_mode():
        for name, f in [("forward_s", full), ("blocks_s", blocks)]:
            f()  # warm-up
            ts = []
            for _ in range(reps):
                s = time.perf_counter()
                f()
                ts.append(time.perf_counter() - s)
            out[name] = ts
    return out


def run_rust(folder, dtype, reps):
    cmd = ["cargo", "bench", "-q", "-p", "vq-transformer", "--bench", "forward", "--",
           "--dir", folder, "--dtype", dtype, "--reps", str(reps)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.exit(f"vq-transformer bench failed:\n{res.stdout}\n{res.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--dir", default="/tmp/vq-transformer-bench")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = ithq_model(args.layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("emb.weight"):
                p.normal_(0.0, 1.0)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif "norm" in name and name.endswith("weight") and p.dim() == 1:
                p.normal_(1.0, 0.02)
            else:
                p.normal_(0.0, 0.02)
    x = torch.randint(0, 4096, (2, 1024))
    x[:, ::2] = 4096
    states = torch.randn(2, 77, 512)
    states = states / states.norm(dim=-1, keepdim=True)
    t = torch.tensor(50)
    with torch.inference_mode():
        expected = model(x, encoder_hidden_states=states, timestep=t).sample
    os.makedirs(args.dir, exist_ok=True)
    model.save_pretrained(os.path.join(args.dir, "transformer"), safe_serialization=True)
    save_file({"x_t": x, "encoder_hidden_states": states, "timestep": t,
               "log_p_x_0": expected.contiguous()}, os.path.join(args.dir, "inputs.safetensors"))

    block_flops, head_flops = flops(args.layers)
    rows = []
    for rnd in range(args.rounds):
        for dtype in args.dtypes.split(","):
            torch_dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
            m = model.to(torch_dtype)
            d = time_diffusers(m, x, states.to(torch_dtype), t, args.reps)
            rows.append(dict(impl="diffusers", dtype=dtype, round=rnd,
                             forward=min(d["forward_s"]), blocks=min(d["blocks_s"]),
                             rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, dev=None))
            r = run_rust(args.dir, dtype, args.reps)
            rows.append(dict(impl="vq-transformer", dtype=dtype + "->" + r["compute_dtype"], round=rnd,
                             forward=min(r["forward_s"]), forward_cached=min(r["forward_cached_s"]),
                             blocks=min(r["blocks_cached_s"]), rss=r["peak_rss_mb"],
                             dev=r["max_abs_dev_vs_diffusers"]))
            for row in rows[-2:]:
                print(json.dumps(row), flush=True)
        model = model.to(torch.float32)

    print(f"\nITHQ shape, {args.layers} layers, batch 2, {args.threads} threads; "
          f"{(block_flops + head_flops) / 1e9:.0f} GFLOP per forward ({block_flops / args.layers / 1e9:.1f} per layer)")
    print("| implementation | dtype | forward s (best of rounds) | per layer s | blocks GFLOP/s | forward GFLOP/s | peak RSS MB | max abs dev vs diffusers f32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    keys = []
    for r in rows:
        if (r["impl"], r["dtype"]) not in keys:
            keys.append((r["impl"], r["dtype"]))
    for impl, dtype in keys:
        sel = [r for r in rows if r["impl"] == impl and r["dtype"] == dtype]
        fwd = min(r["forward"] for r in sel)
        blk = min(r["blocks"] for r in sel)
        extra = ""
        if "forward_cached" in sel[0]:
            extra = f" (cached ctx {min(r['forward_cached'] for r in sel):.3f})"
        dev = sel[0]["dev"]
        print(f"| {impl} | {dtype} | {fwd:.3f}{extra} | {blk / args.layers:.3f} | "
              f"{block_flops / blk / 1e9:.0f} | {(block_flops + head_flops) / fwd / 1e9:.0f} | "
              f"{max(r['rss'] for r in sel):.0f} | {'' if dev is None else f'{dev:.2e}'} |")


if __name__ == "__main__":
    main()
