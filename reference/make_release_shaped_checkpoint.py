#!/usr/bin/env python3
"""A checkpoint with the exact shapes and layout of a released VQ-Diffusion-B text model
(`coco_learnable.pth`: 19 blocks × width 1024, K = 2887 classes through the taming f8 Gumbel
VQ-GAN's 8192 codes, OpenAI CLIP ViT-B/32 text tower, learned null embedding, `ema` copy, AdamW
moments) but random weights, for measuring `vqd convert` on a file of the real size without the
real file (about 6.5 GB):

    python reference/make_release_shaped_checkpoint.py /somewhere/outside/the/repo/b_shaped.pth
    vqd convert /somewhere/.../b_shaped.pth --out /somewhere/.../b-converted
    python reference/make_release_shaped_checkpoint.py /somewhere/.../imagenet_shaped.pth --imagenet

The tiny fixtures (make_original_fixtures.py) prove the mapping value for value; this file proves
the defaults (16 heads, OpenAI's 8 text heads, 32 GroupNorm groups, the shipped 2887-code remap
table, a 4-level VQ-GAN) and the lazy reading on the real shapes.
"""

import sys
from collections import OrderedDict
from pathlib import Path

import torch
from diffusers import Transformer2DModel, VQModel
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_original_fixtures as mo  # noqa: E402

torch.manual_seed(0)
out = Path(sys.argv[1])
K, T = 2887, 100


def imagenet_shaped(out):
    """`imagenet_learnable.pth`'s shapes: the class network (24 blocks × 512, K = 974, 1001-row
    class tables, 16×16 grid on 32-row position tables) and the f16 VQ-GAN (5 levels, 16384 codes
    through the 974-code remap) inside; no EMA or optimiser state (about 2.3 GB)."""
    mo.CLASS.update({"width": 512, "layers": 24, "heads": 16, "classes": 974, "steps": 100, "grid": 16, "table": 32, "labels": 1000})
    denoiser = mo.class_model_state(1001, 3)
    vq = VQModel(
        block_out_channels=(128, 128, 256, 256, 512), layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4 + ("AttnDownEncoderBlock2D",),
        up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 4,
        latent_channels=256, vq_embed_dim=256, num_vq_embeddings=16384, norm_num_groups=32, sample_size=256,
    ).eval()
    vq_sd = {k: v.detach() for k, v in vq.state_dict().items()}
    model = OrderedDict()
    for k, v in mo.vq_to_taming(vq_sd, 5).items():
        model["content_codec." + ("enc." if k.startswith(("encoder.", "quant_conv.")) else "dec.") + k] = v
    for half in ("enc.", "dec."):
        model["content_codec." + half + "quantize.embedding.weight"] = vq_sd["quantize.embedding.weight"]
    for k, v in denoiser.items():
        model["transformer.transformer." + k] = v
    for k, v in mo.alpha1_buffers(974, 100).items():
        model["transformer." + k] = v
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"last_epoch": 1, "model": mo.with_metadata(model)}, str(out))
    print(out, out.stat().st_size / 2**30, "GiB")


if len(sys.argv) > 2 and sys.argv[2] == "--imagenet":
    imagenet_shaped(out)
    sys.exit(0)

transformer = Transformer2DModel(
    num_attention_heads=16, attention_head_dim=64, num_layers=19, cross_attention_dim=512,
    num_vector_embeds=K + 1, sample_size=32, num_embeds_ada_norm=T,
    activation_fn="geglu-approximate", attention_bias=True,
).eval()
denoiser = mo.transformer_to_original({k: v.detach() for k, v in transformer.state_dict().items()})
for i in range(19):
    denoiser[f"blocks.{i}.attn2.mask"] = torch.tril(torch.ones(1024, 1024)).view(1, 1, 1024, 1024)
del transformer

clip = CLIPTextModel(CLIPTextConfig()).eval()  # the ViT-B/32 text tower's shape
clip_sd = {("text_model." + k if not k.startswith("text_model.") else k): v.detach() for k, v in clip.state_dict().items()}
clip_sd = {k: v for k, v in clip_sd.items() if "position_ids" not in k}
openai = mo.clip_to_openai(clip_sd, heads_dtype=torch.float16)
del clip

vq = VQModel(
    block_out_channels=(128, 128, 256, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
    up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3,
    latent_channels=256, vq_embed_dim=256, num_vq_embeddings=8192, norm_num_groups=32, sample_size=256,
).eval()
vq_sd = {k: v.detach() for k, v in vq.state_dict().items()}
taming = mo.vq_to_taming(vq_sd, 4)
codebook = vq_sd["quantize.embedding.weight"]
codec = OrderedDict()
for k, v in taming.items():
    codec[("enc." if k.startswith(("encoder.", "quant_conv.")) else "dec.") + k] = v
for half in ("enc.", "dec."):
    codec[half + "quantize.embed.weight"] = codebook
    codec[half + "quantize.proj.weight"] = torch.zeros(8192, 256, 1, 1)
    codec[half + "quantize.proj.bias"] = torch.zeros(8192)

model = OrderedDict()
for k, v in codec.items():
    model["content_codec." + k] = v
for k, v in openai.items():
    model["transformer.condition_emb." + k] = v
for k, v in denoiser.items():
    model["transformer.transformer." + k] = v
for k, v in mo.alpha1_buffers(K, T).items():
    model["transformer." + k] = v
model["transformer.empty_text_embed"] = torch.randn(77, 512, dtype=torch.float64)
# the EMA copy: parameters moved a little; buffers (masks, the schedule) are constants, so their
# average is themselves
ema = OrderedDict(
    (k[len("transformer."):], v + 1e-3 if k.startswith(("transformer.transformer.", "transformer.condition_emb.")) and not k.endswith(".mask") else v)
    for k, v in model.items()
    if k.startswith("transformer.")
)
trainable = [v for k, v in model.items() if k.startswith("transformer.transformer.") and not k.endswith(".mask")]
ckpt = {
    "last_epoch": 90, "last_iter": 100000,
    "model": mo.with_metadata(model), "ema": mo.with_metadata(ema),
    "optimizer_and_scheduler": {"none": {"name": "none", "optimizer": {"step_iteration": 1, "module": mo.adamw_state(trainable, 1)}}},
}
out.parent.mkdir(parents=True, exist_ok=True)
torch.save(ckpt, str(out))
print(out, out.stat().st_size / 2**30, "GiB;", sum(v.numel() for v in trainable), "trainable denoiser parameters")
