#!/usr/bin/env python3
"""Tiny checkpoints in the layouts of the ORIGINAL (Microsoft) VQ-Diffusion release, made from the
tiny diffusers fixtures, for testing `vqd convert --from original` without the real files.

Run from the repository root after `reference/make_fixtures.py` (which calls it at its end):

    python reference/make_original_fixtures.py

It reads `fixtures/pipeline_learnable`, `fixtures/pipeline_empty` and `fixtures/text_encoder`,
maps every tensor back to the original key names (the inverse of the mapping documented in
docs/original-checkpoints.md) and writes `fixtures/original/`:

* `learnable_tiny.pth` — a training checkpoint like `coco_learnable.pth`: `model` (the whole DALLE
  state dict: the VQ-GAN twice under `content_codec.enc/dec`, the OpenAI-layout CLIP tower with
  fused `in_proj_*`, the denoiser, float32 schedule buffers, `attn2.mask` buffers, a float64
  `empty_text_embed`), `last_epoch`, `last_iter`, `clip_grad_norm`, and AdamW state under
  `optimizer_and_scheduler`; **no `ema` entry** (the importer must fall back to `model`).
* `pretrained_tiny.pth` — like `coco_pretrained.pth` (no learned null embedding) with an `ema`
  entry: `ema` holds the fixture's values, `model` holds perturbed denoiser weights and CLIP
  Linears in float16 (as the original stores them), so only an importer that prefers the EMA copy
  reproduces the fixture.
* the VQ-GAN has 24 codes, of which the transformer uses 16 (code remap like `taming_vqvae_2887.pt`):
  `remap_24_to_16.pt` is the bare LongTensor `full_to_quantize`; the codec inside the main
  checkpoints is a Gumbel quantizer (`quantize.embed`, `quantize.proj`).
* `taming_gumbel_tiny.pth` — the same VQ-GAN as a taming Lightning file (`state_dict`, junk
  `loss.*`, `global_step`).
* `ithq_vqvae_tiny.pth` — the 16-code VQ-GAN as `ithq_vqvae.pth` stores it (`model`, codebook as the
  buffer `quantize.embedding`, EMA statistics `cluster_size` / `embedding_avg`).
* `ffhq_style_tiny.pth` — the 16-code VQ-GAN under `first_stage_model.` with a taming GPT's junk
  `transformer.*` keys (the layout of `vqgan_ffhq_f16_1024.pth`).
* `imagenet_tiny.pth` / `imagenet_learnable_tiny.pth` — the class-conditional
  `Condition2ImageTransformer` layout (`imagenet_pretrained.pth` / `imagenet_learnable.pth`):
  width 16, 2 blocks, 2 heads, K = 7 classes, a 4×4 token grid with 8-row position tables (the
  ImageNet quirk: tables larger than the grid), 5 class labels with a 5-row (mean-row null) or
  6-row (learned null) class table, a convolutional feed-forward; the 16-code VQ-GAN inside
  through `remap_16_to_7.pt`. `class_reference.safetensors` holds log p(x0) from
  `class_model_log_probs` below, a re-implementation of the original block in plain torch
  (checked against the original repository's own `Block` by
  `reference/check_original_class_model.py`).
* `expected.json` — what an importer must infer from each file.

Deterministic: fixed seeds, and the random serialization id of every torch.save file is zeroed.
"""

import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
_caller = sys.modules.get("__main__")
if getattr(_caller, "__file__", "").endswith("make_fixtures.py"):
    mf = _caller  # called from make_fixtures.py: importing it again would re-run its set-up
else:
    import make_fixtures as mf  # noqa: E402
FIX, fix_torch_save_serialization_id, write_json = mf.FIX, mf.fix_torch_save_serialization_id, mf.write_json

OUT = FIX / "original"
FULL_CODES = 24


def resolve(folder):
    pointer = folder / "SHARED"
    return (folder / pointer.read_text().strip()).resolve() if pointer.exists() else folder


def load(folder, name):
    return load_file(str(resolve(folder) / name))


# ----------------------------------------------------------------------------------------------
# diffusers -> original key maps (the inverse of the importer's)


def transformer_to_original(sd):
    out = OrderedDict()
    attn = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj"}
    for k, v in sd.items():
        nk = k
        nk = nk.replace("latent_image_embedding.", "content_emb.")
        nk = nk.replace("transformer_blocks.", "blocks.")
        nk = nk.replace(".norm1.", ".ln1.").replace(".norm2.", ".ln1_1.").replace(".norm3.", ".ln2.")
        for new, old in attn.items():
            nk = nk.replace(f".{new}.", f".{old}.")
        nk = nk.replace(".ff.net.0.proj.", ".mlp.0.").replace(".ff.net.2.", ".mlp.2.")
        if nk.startswith("norm_out."):
            nk = "to_logits.0." + nk[len("norm_out.") :]
        if nk.startswith("out."):
            nk = "to_logits.1." + nk[len("out.") :]
        assert nk != k or k.startswith("blocks"), k
        out[nk] = v.clone()
    return out


def clip_to_openai(sd, heads_dtype=torch.float32):
    """HF CLIPTextModel -> OpenAI CLIP text tower (what `condition_emb.` holds)."""
    p = "text_model."
    layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith(p + "encoder.layers."))
    out = OrderedDict()
    out["positional_embedding"] = sd[p + "embeddings.position_embedding.weight"].clone()
    out["token_embedding.weight"] = sd[p + "embeddings.token_embedding.weight"].clone()
    for n in range(layers):
        q = f"{p}encoder.layers.{n}."
        o = f"transformer.resblocks.{n}."
        sa = q + "self_attn."
        out[o + "attn.in_proj_weight"] = torch.cat([sd[sa + f"{x}_proj.weight"] for x in "qkv"]).to(heads_dtype)
        out[o + "attn.in_proj_bias"] = torch.cat([sd[sa + f"{x}_proj.bias"] for x in "qkv"]).to(heads_dtype)
        out[o + "attn.out_proj.weight"] = sd[sa + "out_proj.weight"].to(heads_dtype)
        out[o + "attn.out_proj.bias"] = sd[sa + "out_proj.bias"].to(heads_dtype)
        out[o + "ln_1.weight"] = sd[q + "layer_norm1.weight"].clone()
        out[o + "ln_1.bias"] = sd[q + "layer_norm1.bias"].clone()
        out[o + "mlp.c_fc.weight"] = sd[q + "mlp.fc1.weight"].to(heads_dtype)
        out[o + "mlp.c_fc.bias"] = sd[q + "mlp.fc1.bias"].to(heads_dtype)
        out[o + "mlp.c_proj.weight"] = sd[q + "mlp.fc2.weight"].to(heads_dtype)
        out[o + "mlp.c_proj.bias"] = sd[q + "mlp.fc2.bias"].to(heads_dtype)
        out[o + "ln_2.weight"] = sd[q + "layer_norm2.weight"].clone()
        out[o + "ln_2.bias"] = sd[q + "layer_norm2.bias"].clone()
    out["ln_final.weight"] = sd[p + "final_layer_norm.weight"].clone()
    out["ln_final.bias"] = sd[p + "final_layer_norm.bias"].clone()
    width = out["ln_final.weight"].shape[0]
    g = torch.Generator().manual_seed(5)
    out["text_projection"] = torch.randn(width, width, generator=g).to(torch.float16)  # unused
    return out


def vq_to_taming(sd, levels):
    """diffusers VQModel -> taming key grammar (codebook excluded)."""
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}

    def block_part(rest):
        for new, old in attn.items():
            if rest.startswith(new + "."):
                return old + rest[len(new) :], new != "group_norm"
        return rest.replace("conv_shortcut", "nin_shortcut"), False

    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith("quantize."):
            continue
        parts = k.split(".")
        conv1x1 = False
        if parts[0] in ("encoder", "decoder") and parts[1] in ("conv_norm_out",):
            nk = f"{parts[0]}.norm_out." + ".".join(parts[2:])
        elif parts[0] in ("encoder", "decoder") and parts[1] == "mid_block":
            kind, idx, rest = parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                nk = f"{parts[0]}.mid.block_{idx + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
            else:
                assert idx == 0
                rest, conv1x1 = block_part(rest)
                nk = f"{parts[0]}.mid.attn_1.{rest}"
        elif parts[0] == "encoder" and parts[1] == "down_blocks":
            level, kind = int(parts[2]), parts[3]
            if kind == "downsamplers":
                nk = f"encoder.down.{level}.downsample." + ".".join(parts[5:])
            else:
                j, rest = int(parts[4]), ".".join(parts[5:])
                if kind == "attentions":
                    rest, conv1x1 = block_part(rest)
                    nk = f"encoder.down.{level}.attn.{j}.{rest}"
                else:
                    nk = f"encoder.down.{level}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        elif parts[0] == "decoder" and parts[1] == "up_blocks":
            level, kind = levels - 1 - int(parts[2]), parts[3]
            if kind == "upsamplers":
                nk = f"decoder.up.{level}.upsample." + ".".join(parts[5:])
            else:
                j, rest = int(parts[4]), ".".join(parts[5:])
                if kind == "attentions":
                    rest, conv1x1 = block_part(rest)
                    nk = f"decoder.up.{level}.attn.{j}.{rest}"
                else:
                    nk = f"decoder.up.{level}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        else:
            nk = k  # conv_in, conv_out, quant_conv, post_quant_conv
        if conv1x1 and nk.endswith(".weight"):
            v = v[:, :, None, None]
        assert nk not in out, nk
        out[nk] = v.clone()
    return out


# ----------------------------------------------------------------------------------------------
# the pieces the original adds


def alpha1_buffers(num_classes, steps):
    """The float32 schedule buffers of DiffusionTransformer (`alpha1`, N = K content classes)."""
    att_1, att_T, ctt_1, ctt_T = 0.99999, 0.000009, 0.000009, 0.99999
    att = np.arange(0, steps) / (steps - 1) * (att_T - att_1) + att_1
    att = np.concatenate(([1], att))
    at = att[1:] / att[:-1]
    ctt = np.arange(0, steps) / (steps - 1) * (ctt_T - ctt_1) + ctt_1
    ctt = np.concatenate(([0], ctt))
    ct = 1 - (1 - ctt[1:]) / (1 - ctt[:-1])
    bt = (1 - at - ct) / num_classes
    att = np.concatenate((att[1:], [1]))
    ctt = np.concatenate((ctt[1:], [0]))
    btt = (1 - att - ctt) / num_classes
    t = lambda a: torch.tensor(a.astype("float64"))  # noqa: E731
    log_1_min = lambda a: torch.log(1 - a.exp() + 1e-40)  # noqa: E731
    logs = {
        "log_at": torch.log(t(at)),
        "log_bt": torch.log(t(bt)),
        "log_ct": torch.log(t(ct)),
        "log_cumprod_at": torch.log(t(att)),
        "log_cumprod_bt": torch.log(t(btt)),
        "log_cumprod_ct": torch.log(t(ctt)),
    }
    logs["log_1_min_ct"] = log_1_min(logs["log_ct"])
    logs["log_1_min_cumprod_ct"] = log_1_min(logs["log_cumprod_ct"])
    out = OrderedDict((k, v.float()) for k, v in logs.items())
    out["Lt_history"] = torch.zeros(steps)
    out["Lt_count"] = torch.zeros(steps)
    return out


def remap_table(used):
    """full_to_quantize for FULL_CODES codes whose `used` ones (increasing, code 0 first) keep order."""
    table = torch.zeros(FULL_CODES, dtype=torch.int64)
    for q, code in enumerate(used):
        table[code] = q
    return table


def full_codebook(codebook, used, seed):
    g = torch.Generator().manual_seed(seed)
    full = 3.0 + torch.randn(FULL_CODES, codebook.shape[1], generator=g)  # junk rows, far away
    full[torch.tensor(used)] = codebook
    return full


def adamw_state(params, seed):
    g = torch.Generator().manual_seed(seed)
    state = {
        i: {"step": torch.tensor(7.0), "exp_avg": 1e-3 * torch.randn(p.shape, generator=g), "exp_avg_sq": 1e-6 * torch.rand(p.shape, generator=g)}
        for i, p in enumerate(params)
    }
    groups = [{"lr": 4.5e-4, "betas": (0.9, 0.96), "eps": 1e-8, "weight_decay": 4.5e-2, "amsgrad": False, "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None, "params": list(range(len(params)))}]
    return {"state": state, "param_groups": groups}


def save(obj, name):
    path = OUT / name
    torch.save(obj, str(path))
    fix_torch_save_serialization_id(path)
    return path


def with_metadata(d):
    """An OrderedDict carrying a `_metadata` attribute, as `state_dict()` returns."""
    od = OrderedDict(d)
    od._metadata = OrderedDict({"": {"version": 1}})
    return od


def main_checkpoint(pipeline, learnable, codec, with_ema, seed):
    tsd = load(FIX / pipeline / "transformer", "diffusion_pytorch_model.safetensors")
    csd = load(FIX / "text_encoder", "model.safetensors")
    transformer = transformer_to_original(tsd)
    grid = tsd["latent_image_embedding.height_emb.weight"].shape[0]
    tokens = grid * tsd["latent_image_embedding.width_emb.weight"].shape[0]
    for i in range(1 + max(int(k.split(".")[1]) for k in transformer if k.startswith("blocks."))):
        transformer[f"blocks.{i}.attn2.mask"] = torch.tril(torch.ones(tokens, tokens)).view(1, 1, tokens, tokens)
    classes = tsd["out.weight"].shape[0]
    steps = tsd["transformer_blocks.0.norm1.emb.weight"].shape[0]
    exact_clip = clip_to_openai(csd)

    def dalle(transformer_part, clip_part, null):
        d = OrderedDict()
        for k, v in codec.items():
            d["content_codec." + k] = v
        for k, v in clip_part.items():
            d["transformer.condition_emb." + k] = v
        for k, v in transformer_part.items():
            d["transformer.transformer." + k] = v
        for k, v in alpha1_buffers(classes, steps).items():
            d["transformer." + k] = v
        if null is not None:
            d["transformer.empty_text_embed"] = null
        return d

    null = None
    if learnable:
        nsd = load(FIX / pipeline / "learned_classifier_free_sampling_embeddings", "diffusion_pytorch_model.safetensors")
        null = nsd["embeddings"].to(torch.float64)

    g = torch.Generator().manual_seed(seed)
    if with_ema:
        plain_transformer = OrderedDict((k, v + 0.01 * torch.randn(v.shape, generator=g) if not k.endswith(".mask") else v) for k, v in transformer.items())
        plain_clip = clip_to_openai(csd, heads_dtype=torch.float16)
        # the frozen token table is the same tensor in both copies (stored once by torch.save)
        plain_clip["token_embedding.weight"] = exact_clip["token_embedding.weight"]
        model = dalle(plain_transformer, plain_clip, null)
        ema_full = dalle(transformer, exact_clip, null)
        ema = with_metadata((k[len("transformer.") :], v) for k, v in ema_full.items() if k.startswith("transformer."))
    else:
        model = dalle(transformer, exact_clip, null)
        ema = None
    model = with_metadata(model)
    trainable = [v for k, v in model.items() if k.startswith("transformer.transformer.") and not k.endswith(".mask")]
    ckpt = {
        "last_epoch": 3,
        "last_iter": 1234,
        "model": model,
        "clip_grad_norm": {"last_epoch": 3, "last_iter": 1234, "max_norm": float("inf"), "norm_type": 2, "history": None},
        "optimizer_and_scheduler": {
            "none": {
                "name": "none",
                "start_epoch": 0,
                "end_epoch": -1,
                "start_iteration": 0,
                "end_iteration": -1,
                "optimizer": {"step_iteration": 1, "module": adamw_state(trainable, seed + 1)},
                "scheduler": {"step_iteration": 1, "module": {"base_lrs": [4.5e-4], "last_epoch": 1234, "warmup": (1000, 0.1), "min_lr": None}},
            }
        },
    }
    if ema is not None:
        ckpt["ema"] = ema
    return ckpt


# ----------------------------------------------------------------------------------------------
# the class-conditional network (Condition2ImageTransformer), re-implemented in plain torch

CLASS = {"width": 16, "layers": 2, "heads": 2, "classes": 7, "steps": 10, "grid": 4, "table": 8, "labels": 5}


def class_model_state(rows, seed):
    """A random Condition2ImageTransformer state dict in the original key names."""
    g = torch.Generator().manual_seed(seed)
    D, K, T, P = CLASS["width"], CLASS["classes"], CLASS["steps"], CLASS["table"]
    r = lambda *shape, s=0.2: s * torch.randn(*shape, generator=g)  # noqa: E731
    sd = OrderedDict()
    sd["content_emb.emb.weight"] = r(K + 1, D, s=1.0)
    sd["content_emb.height_emb.weight"] = r(P, D, s=1.0)
    sd["content_emb.width_emb.weight"] = r(P, D, s=1.0)
    for i in range(CLASS["layers"]):
        b = f"blocks.{i}."
        sd[b + "ln1.emb.weight"] = r(T, D, s=1.0)
        sd[b + "ln1.linear.weight"] = r(2 * D, D)
        sd[b + "ln1.linear.bias"] = r(2 * D)
        for p in ("key", "query", "value", "proj"):
            sd[b + f"attn.{p}.weight"] = r(D, D)
            sd[b + f"attn.{p}.bias"] = r(D)
        sd[b + "ln2.emb.weight"] = r(rows, D, s=1.0)
        sd[b + "ln2.linear.weight"] = r(2 * D, D)
        sd[b + "ln2.linear.bias"] = r(2 * D)
        sd[b + "mlp.conv1.weight"] = r(4 * D, D, 3, 3, s=0.1)
        sd[b + "mlp.conv1.bias"] = r(4 * D)
        sd[b + "mlp.conv2.weight"] = r(D, 4 * D, 3, 3, s=0.05)
        sd[b + "mlp.conv2.bias"] = r(D)
    sd["to_logits.0.weight"] = 1.0 + r(D)
    sd["to_logits.0.bias"] = r(D)
    sd["to_logits.1.weight"] = r(K, D, s=1.0)
    sd["to_logits.1.bias"] = r(K)
    return sd


def _ada_ln(x, table, weight, bias, index):
    rows = table.shape[0]
    emb = torch.stack([table[i] if i < rows else table.mean(dim=0) for i in index.tolist()])
    u = F.linear(F.silu(emb), weight, bias).unsqueeze(1)
    scale, shift = u.chunk(2, dim=2)
    return F.layer_norm(x, (x.shape[-1],), eps=1e-5) * (1 + scale) + shift


def class_model_log_probs(sd, x_t, t, labels):
    """log p(x0) (B, K, N) of the original class-conditional network, in float32 with the head's
    log-softmax in float64 as the original `predict_start` does."""
    D, H = CLASS["width"], CLASS["heads"]
    B, N = x_t.shape
    side = int(round(N ** 0.5))
    pos = (sd["content_emb.height_emb.weight"][:, None, :] + sd["content_emb.width_emb.weight"][None, :, :]).reshape(-1, D)
    x = sd["content_emb.emb.weight"][x_t] + pos[:N]
    steps = torch.full((B,), t, dtype=torch.long)
    for i in range(CLASS["layers"]):
        b = f"blocks.{i}."
        h = _ada_ln(x, sd[b + "ln1.emb.weight"], sd[b + "ln1.linear.weight"], sd[b + "ln1.linear.bias"], steps)
        proj = lambda name, v: F.linear(v, sd[b + f"attn.{name}.weight"], sd[b + f"attn.{name}.bias"])  # noqa: E731
        q, k, v = (proj(n, h).view(B, N, H, D // H).transpose(1, 2) for n in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(-2, -1) / (D // H) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, N, D)
        x = x + proj("proj", y)
        h = _ada_ln(x, sd[b + "ln2.emb.weight"], sd[b + "ln2.linear.weight"], sd[b + "ln2.linear.bias"], labels)
        img = h.transpose(1, 2).reshape(B, D, side, side)
        m = F.conv2d(img, sd[b + "mlp.conv1.weight"], sd[b + "mlp.conv1.bias"], padding=1)
        m = m * torch.sigmoid(1.702 * m)
        m = F.conv2d(m, sd[b + "mlp.conv2.weight"], sd[b + "mlp.conv2.bias"], padding=1)
        x = x + m.reshape(B, D, N).transpose(1, 2)
    h = F.layer_norm(x, (D,), sd["to_logits.0.weight"], sd["to_logits.0.bias"], eps=1e-5)
    logits = F.linear(h, sd["to_logits.1.weight"], sd["to_logits.1.bias"]).transpose(1, 2)
    return F.log_softmax(logits.double(), dim=1).float()


def class_references(plain, learnable):
    """Golden log-probs: normal labels, the null label on both tables, and a guided step."""
    g = torch.Generator().manual_seed(71)
    K, N = CLASS["classes"], CLASS["grid"] ** 2
    x_t = torch.randint(0, K + 1, (2, N), generator=g)
    x_t[0, :5] = K  # some masked tokens
    null = CLASS["labels"]
    out, info = {}, {}

    def add(name, t, what):
        out[name] = t.contiguous()
        info[name] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "what": what}

    add("x_t", x_t, "token ids (B, N); class K = 7 is the mask")
    for name, sd in (("plain", plain), ("learnable", learnable)):
        add(f"{name}.labels_0_3.t4", class_model_log_probs(sd, x_t, 4, torch.tensor([0, 3])), "labels [0, 3], t = 4")
        add(f"{name}.null.t9", class_model_log_probs(sd, x_t, 9, torch.tensor([null, null])), "the null label 5 (mean row on the 5-row table, learned row on the 6-row one), t = 9")
        u = class_model_log_probs(sd, x_t, 2, torch.tensor([null, null]))
        c = class_model_log_probs(sd, x_t, 2, torch.tensor([1, 4]))
        guided = u + 1.5 * (c - u)
        guided = guided - torch.logsumexp(guided, dim=1, keepdim=True)
        add(f"{name}.guided_1_4.s1.5.t2", guided, "guided (scale 1.5) for labels [1, 4] at t = 2, renormalised over the K classes")
    return out, info


def class_checkpoint(rows, seed, codec, with_ema):
    transformer = class_model_state(rows, seed)
    d = OrderedDict()
    for k, v in codec.items():
        d["content_codec." + k] = v
    for k, v in transformer.items():
        d["transformer.transformer." + k] = v
    for k, v in alpha1_buffers(CLASS["classes"], CLASS["steps"]).items():
        d["transformer." + k] = v
    ckpt = {"last_epoch": 1, "last_iter": 10, "model": with_metadata(d)}
    if with_ema:
        ckpt["ema"] = with_metadata((k[len("transformer.") :], v) for k, v in d.items() if k.startswith("transformer."))
        g = torch.Generator().manual_seed(seed + 1)
        for k in list(d):
            if k.startswith("transformer.transformer."):
                d[k] = d[k] + 0.01 * torch.randn(d[k].shape, generator=g)
        ckpt["model"] = with_metadata(d)
    return ckpt, transformer


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    vq = load(FIX / "pipeline_learnable" / "vqvae", "diffusion_pytorch_model.safetensors")
    vq_cfg = json.loads((resolve(FIX / "pipeline_learnable" / "vqvae") / "config.json").read_text())
    levels = len(vq_cfg["block_out_channels"])
    codebook = vq["quantize.embedding.weight"]
    codes = codebook.shape[0]
    taming = vq_to_taming(vq, levels)

    # 24 full codes, the transformer's 16 classes are codes 0, then 15 others in increasing order
    used = [0, 1, 3, 4, 6, 7, 9, 10, 12, 14, 15, 17, 18, 20, 22, 23]
    assert len(used) == codes
    table = remap_table(used)
    save(table, "remap_24_to_16.pt")
    full = full_codebook(codebook, used, 31)
    g = torch.Generator().manual_seed(32)
    proj_w = torch.randn(FULL_CODES, codebook.shape[1], 1, 1, generator=g)
    proj_b = torch.randn(FULL_CODES, generator=g)

    gumbel = OrderedDict(taming)
    gumbel["quantize.embed.weight"] = full
    gumbel["quantize.proj.weight"] = proj_w
    gumbel["quantize.proj.bias"] = proj_b

    # inside a main checkpoint: enc/dec halves, the quantizer under both (same tensors)
    codec = OrderedDict()
    for k, v in gumbel.items():
        if k.startswith("encoder.") or k.startswith("quant_conv."):
            codec["enc." + k] = v
    for k in ("quantize.embed.weight", "quantize.proj.weight", "quantize.proj.bias"):
        codec["enc." + k] = gumbel[k]
    for k, v in gumbel.items():
        if k.startswith("decoder.") or k.startswith("post_quant_conv."):
            codec["dec." + k] = v
    for k in ("quantize.embed.weight", "quantize.proj.weight", "quantize.proj.bias"):
        codec["dec." + k] = gumbel[k]

    save(main_checkpoint("pipeline_learnable", True, codec, with_ema=False, seed=41), "learnable_tiny.pth")
    save(main_checkpoint("pipeline_empty", False, codec, with_ema=True, seed=51), "pretrained_tiny.pth")

    junk = torch.Generator().manual_seed(61)
    lightning = {
        "epoch": 11,
        "global_step": 9999,
        "state_dict": with_metadata(list(gumbel.items()) + [("loss.discriminator.main.0.weight", torch.randn(4, 3, 4, 4, generator=junk)), ("loss.logvar", torch.zeros(()))]),
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": []}]}],
        "lr_schedulers": [],
    }
    save(lightning, "taming_gumbel_tiny.pth")

    ithq = OrderedDict(taming)
    ithq["quantize.embedding"] = codebook.clone()
    ithq["quantize.cluster_size"] = torch.rand(codes, generator=junk)
    ithq["quantize.embedding_avg"] = torch.randn(codes, codebook.shape[1], generator=junk)
    save({"model": with_metadata(ithq), "epoch": 5}, "ithq_vqvae_tiny.pth")

    ffhq = OrderedDict(("first_stage_model." + k, v) for k, v in taming.items())
    ffhq["first_stage_model.quantize.embedding.weight"] = codebook.clone()
    ffhq["transformer.tok_emb.weight"] = torch.randn(codes, 4, generator=junk)
    ffhq["cond_stage_model.junk"] = torch.zeros(1)
    save({"state_dict": with_metadata(ffhq), "global_step": 3}, "ffhq_style_tiny.pth")

    # the class-conditional models: the 16-code VQ-GAN reduced to the transformer's 7 classes
    class_used = [0, 2, 5, 8, 9, 12, 15]
    class_table = torch.zeros(codes, dtype=torch.int64)
    for q, code in enumerate(class_used):
        class_table[code] = q
    save(class_table, "remap_16_to_7.pt")
    vq_codec = OrderedDict()
    for k, v in taming.items():
        half = "enc." if k.startswith("encoder.") or k.startswith("quant_conv.") else "dec."
        vq_codec[half + k] = v
    vq_codec["enc.quantize.embedding.weight"] = codebook.clone()
    vq_codec["dec.quantize.embedding.weight"] = vq_codec["enc.quantize.embedding.weight"]
    plain_ckpt, plain = class_checkpoint(CLASS["labels"], 81, vq_codec, with_ema=False)
    learn_ckpt, learn = class_checkpoint(CLASS["labels"] + 1, 91, vq_codec, with_ema=True)
    save(plain_ckpt, "imagenet_tiny.pth")
    save(learn_ckpt, "imagenet_learnable_tiny.pth")
    refs, info = class_references(plain, learn)
    save_file(refs, str(OUT / "class_reference.safetensors"), metadata={"format": "pt"})
    write_json(OUT / "class_reference.json", {"file": "class_reference.safetensors", "tensors": info, "model": CLASS})

    tcfg = json.loads((FIX / "pipeline_learnable" / "transformer" / "config.json").read_text())
    write_json(
        OUT / "expected.json",
        {
            "learnable_tiny.pth": {"family": "text", "width": 16, "layers": 2, "classes": 16, "timesteps": 10, "condition_width": 8, "learned_null": True, "ema": False, "grid": tcfg["sample_size"], "codec": "gumbel", "codebook_rows": FULL_CODES, "text_layers": 2, "text_width": 8},
            "pretrained_tiny.pth": {"family": "text", "width": 16, "layers": 2, "classes": 16, "timesteps": 10, "condition_width": 8, "learned_null": False, "ema": True, "grid": tcfg["sample_size"], "codec": "gumbel", "codebook_rows": FULL_CODES, "text_layers": 2, "text_width": 8},
            "taming_gumbel_tiny.pth": {"codec": "gumbel", "codebook_rows": FULL_CODES, "levels": levels},
            "ithq_vqvae_tiny.pth": {"codec": "ema", "codebook_rows": codes, "levels": levels},
            "ffhq_style_tiny.pth": {"codec": "vq", "codebook_rows": codes, "levels": levels},
            "imagenet_tiny.pth": {"family": "class", "class_table_rows": CLASS["labels"], "learned_null": False, "ema": False, "codebook_rows": codes, "remap": "remap_16_to_7.pt"},
            "imagenet_learnable_tiny.pth": {"family": "class", "class_table_rows": CLASS["labels"] + 1, "learned_null": True, "ema": True, "codebook_rows": codes, "remap": "remap_16_to_7.pt"},
            "remap_16_to_7.pt": {"full_codes": codes, "classes": CLASS["classes"], "quantize_to_full": class_used},
            "remap_24_to_16.pt": {"full_codes": FULL_CODES, "classes": codes, "quantize_to_full": used},
            "heads": tcfg["num_attention_heads"],
            "text_heads": 4,
            "vq_norm_groups": vq_cfg["norm_num_groups"],
        },
    )
    for p in sorted(OUT.iterdir()):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
