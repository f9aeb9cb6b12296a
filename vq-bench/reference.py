"""The Python reference side of `vq-bench compare`: one component of diffusers 0.42 /
transformers 5.24 on torch, timed on the inputs and weights `vq-bench` prepared in --work,
printed as one `RESULT {json}` line (the same fields as the Rust measurement).

Run by `cargo run --release -p vq-bench -- compare` under $REFERENCE_PYTHON (a venv with
reference/requirements.txt); never by the tests.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch
from safetensors.torch import load_file

T = 50
GUIDANCE = 5.0
RATE = 0.86


def timed(warmup, reps, f):
    for _ in range(warmup):
        f()
    out = []
    for _ in range(reps):
        s = time.perf_counter()
        f()
        out.append(time.perf_counter() - s)
    return out


def dtype_of(variant):
    return {"f32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}[variant]


def quantised(model, names, inplace=False):
    """`model` with the `nn.Linear` modules in `names` dynamically quantised to int8, weights
    per output channel (torch.ao's `quantize_dynamic`, fbgemm/x86 engine): the scheme of ours,
    except that torch quantises each activation tensor as a whole, ours per token."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(
            model, {n: per_channel_dynamic_qconfig for n in names}, dtype=torch.qint8, inplace=inplace
        )


def projections(model):
    """The names of the blocks' attention and feed-forward projections, as with_int8_weights."""
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith("transformer_blocks.") and (".attn" in n or ".ff." in n)
    ]


def truncate(log_p_x_0, rate):
    from diffusers.pipelines.deprecated.vq_diffusion.pipeline_vq_diffusion import VQDiffusionPipeline

    return VQDiffusionPipeline.truncate(None, log_p_x_0, rate)


def released_scheduler():
    from diffusers import VQDiffusionScheduler

    return VQDiffusionScheduler(num_vec_classes=4097, num_train_timesteps=100)


def transformer(dirname, variant):
    from diffusers import Transformer2DModel

    model = Transformer2DModel.from_pretrained(os.path.join(dirname, "transformer")).eval()
    model = model.to(dtype_of(variant))
    if variant == "int8":
        model = quantised(model, projections(model))
    inputs = load_file(os.path.join(dirname, "inputs.safetensors"))
    states = inputs["encoder_hidden_states"].to(dtype_of(variant))
    return model, inputs["x_t"].long(), states


def gemm(a):
    m, k, n = 2048, 1408, 5632
    dtype = dtype_of(a.variant)
    w = (torch.randn(n, k) * 0.02).to(dtype)
    x = torch.randn(m, k).to(dtype)
    if a.variant == "int8":
        layer = torch.nn.Sequential(torch.nn.Linear(k, n, bias=False))
        layer[0].weight.data = w
        layer = quantised(layer, ["0"])
        return timed(2, a.reps, lambda: layer(x)), "torch.ao quantize_dynamic, qint8 per channel"
    return timed(2, a.reps, lambda: torch.nn.functional.linear(x, w)), f"computes {a.variant}"


def transformer_layer(a):
    model, x, states = transformer(os.path.join(a.work, f"transformer-{a.layers}"), a.variant)
    t = torch.tensor(T)

    def blocks():
        h = model.latent_image_embedding(x)
        for blk in model.transformer_blocks:
            h = blk(h, encoder_hidden_states=states, timestep=t)
        return h

    seconds = timed(1, a.reps, blocks)
    computes = "int8 projections (quantize_dynamic, per channel)" if a.variant == "int8" else a.variant
    return [s / a.layers for s in seconds], f"torch {torch.__version__}, computes {computes}"


def denoising_step(a):
    model, x, states = transformer(os.path.join(a.work, f"transformer-{max(a.step_layers, 36)}"), a.variant)
    scheduler = released_scheduler()
    scheduler.set_timesteps(100)
    t = torch.tensor(T)
    sample = x[:1]
    generator = torch.Generator().manual_seed(0)

    def step():
        out = model(torch.cat([sample] * 2), encoder_hidden_states=states, timestep=t).sample.float()
        uncond, text = out.chunk(2)
        out = uncond + GUIDANCE * (text - uncond)
        out -= torch.logsumexp(out, dim=1, keepdim=True)
        out = truncate(out, RATE).clamp(-70)
        return scheduler.step(out, timestep=t, sample=sample, generator=generator).prev_sample

    return timed(0, a.step_reps, step), f"{max(a.step_layers, 36)} layers, torch {torch.__version__}"


def sampler_inputs(a):
    t = load_file(os.path.join(a.work, "sampler", "inputs.safetensors"))
    return t["model_output"], t["x_t"].long()


def guided_sampler_step(a):
    out, x = sampler_inputs(a)
    scheduler = released_scheduler()
    scheduler.set_timesteps(100)
    generator = torch.Generator().manual_seed(0)
    uncond, text = out[:2], out[2:]

    def step():
        o = uncond + GUIDANCE * (text - uncond)
        o = o - torch.logsumexp(o, dim=1, keepdim=True)
        o = truncate(o, RATE).clamp(-70)
        return scheduler.step(o, timestep=torch.tensor(T), sample=x, generator=generator).prev_sample

    return timed(1, a.reps, step), "guidance + truncate + clamp + scheduler.step"


def sampler_step(a):
    out, x = sampler_inputs(a)
    scheduler = released_scheduler()
    scheduler.set_timesteps(100)
    generator = torch.Generator().manual_seed(0)
    log_p = out[2:].clamp(-70)
    return timed(1, a.reps, lambda: scheduler.step(log_p, timestep=torch.tensor(T), sample=x, generator=generator)), "scheduler.step"


def truncation(a):
    out, _ = sampler_inputs(a)
    log_p = out[2:]
    return timed(1, a.reps, lambda: truncate(log_p, RATE)), "VQDiffusionPipeline.truncate"


def vq_decode(a):
    from diffusers import VQModel

    d = os.path.join(a.work, "vqvae")
    model = VQModel.from_pretrained(d).eval()
    tokens = load_file(os.path.join(d, "tokens.safetensors"))["tokens"].long()

    def decode():
        emb = model.quantize.get_codebook_entry(tokens.reshape(1, -1), shape=(1, 32, 32, model.config.vq_embed_dim))
        return model.decode(emb, force_not_quantize=True).sample

    return timed(1, a.reps, decode), "get_codebook_entry + decode"


def clip_encode(a):
    from transformers import CLIPTextModel

    d = os.path.join(a.work, "clip")
    model = CLIPTextModel.from_pretrained(d).eval()
    ids = load_file(os.path.join(d, "ids.safetensors"))["ids"].long()
    return timed(2, a.reps, lambda: model(ids).last_hidden_state), f"transformers CLIPTextModel"


def embedded(a):
    from diffusers import Transformer2DModel, VQDiffusionPipeline, VQDiffusionScheduler, VQModel
    from diffusers.pipelines.deprecated.vq_diffusion.pipeline_vq_diffusion import (
        LearnedClassifierFreeSamplingEmbeddings,
    )
    from transformers import CLIPTextModel, CLIPTokenizer

    root = os.path.join(a.root, "..", "models", "shape-world")
    f32 = torch.float32
    pipe = VQDiffusionPipeline(
        vqvae=VQModel.from_pretrained(os.path.join(root, "vqvae"), torch_dtype=f32).eval(),
        text_encoder=CLIPTextModel.from_pretrained(os.path.join(root, "text_encoder"), torch_dtype=f32).eval(),
        tokenizer=CLIPTokenizer.from_pretrained(os.path.join(root, "tokenizer")),
        transformer=Transformer2DModel.from_pretrained(os.path.join(root, "transformer"), torch_dtype=f32).eval(),
        scheduler=VQDiffusionScheduler.from_pretrained(os.path.join(root, "scheduler")),
        learned_classifier_free_sampling_embeddings=LearnedClassifierFreeSamplingEmbeddings.from_pretrained(
            os.path.join(root, "learned_classifier_free_sampling_embeddings"), torch_dtype=f32
        ).eval(),
    )
    pipe.set_progress_bar_config(disable=True)
    cfg_path = os.path.join(root, "generation_config.json")
    cfg = json.load(open(cfg_path)) if os.path.exists(cfg_path) else {}
    prompts = [
        "a red circle in the top left",
        "a large blue square",
        "a small yellow triangle above a red circle",
        "a green square in the bottom right",
        "a purple circle",
        "an orange triangle in the centre",
        "a small white square left of a blue circle",
        "a cyan circle in the top right",
    ]
    steps = pipe.scheduler.config.num_train_timesteps

    def run():
        return pipe(
            prompts,
            num_inference_steps=steps,
            guidance_scale=cfg.get("guidance_scale", 5.0),
            truncation_rate=cfg.get("truncation_rate", 1.0),
            generator=torch.Generator().manual_seed(0),
        )

    seconds = timed(1, a.reps, run)
    return [s / len(prompts) for s in seconds], f"VQDiffusionPipeline, batch of {len(prompts)}"


def load(a):
    from diffusers import Transformer2DModel

    d = os.path.join(a.work, f"transformer-{max(a.step_layers, 36)}", "transformer")
    size = os.path.getsize(os.path.join(d, "diffusion_pytorch_model.safetensors"))
    s = time.perf_counter()
    model = Transformer2DModel.from_pretrained(d).eval()
    if a.variant == "int8":
        quantised(model, projections(model), inplace=True)
    seconds = time.perf_counter() - s
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [seconds], f"file {size / 2**20:.0f} MiB; peak RSS {rss / 2**20:.0f} MiB = {rss / size:.3f} x the file"


RUNS = {
    "gemm": gemm,
    "transformer-layer": transformer_layer,
    "denoising-step": denoising_step,
    "guided-sampler-step": guided_sampler_step,
    "sampler-step": sampler_step,
    "truncation": truncation,
    "vq-decode": vq_decode,
    "clip-encode": clip_encode,
    "embedded": embedded,
    "load": load,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--component", required=True, choices=sorted(RUNS))
    ap.add_argument("--variant", default="f32")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--step-reps", type=int, default=1)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--step-layers", type=int, default=36)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--root", default=".")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with torch.inference_mode():
        seconds, notes = RUNS[a.component](a)
    result = {
        "implementation": "reference",
        "component": a.component,
        "variant": a.variant,
        "seconds": seconds,
        "flops": None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "notes": notes,
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
