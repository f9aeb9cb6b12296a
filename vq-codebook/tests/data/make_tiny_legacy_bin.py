"""Writes the tiny PyTorch-format golden used by tests/pth_legacy.rs (no Python at test time).

A diffusers VQModel (channels 8/16, groups 4, attention in the deep level and the mid blocks,
16 codes of size 4) with all parameters randomised, saved with torch.save as a `.bin` state dict
using the *legacy* attention key names (query/key/value/proj_attn) that the ITHQ hub file has,
plus the diffusers outputs the Rust test compares against (tiny_legacy_expected.safetensors):
  images (2,3,8,8), encode.latents, encode.indices (i64, (2,4,4)), tokens, decode.images.

Run with: $REFERENCE_PYTHON vq-codebook/tests/data/make_tiny_legacy_bin.py
"""
import os

import torch
from diffusers import VQModel
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
model = VQModel(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
    up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(8, 16),
    layers_per_block=1,
    latent_channels=6,
    num_vq_embeddings=16,
    norm_num_groups=4,
    vq_embed_dim=4,
).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("norm1.weight") or "norm" in name and name.endswith(".weight"):
            p.copy_(1.0 + 0.2 * torch.randn_like(p))
        elif name == "quantize.embedding.weight":
            p.copy_(torch.randn_like(p))
        else:
            p.copy_(0.3 * torch.randn_like(p))

    images = torch.rand(2, 3, 8, 8) * 2 - 1
    latents = model.encode(images).latents
    _, _, (_, _, indices) = model.quantize(latents)
    indices = indices.reshape(2, 4, 4)
    tokens = torch.randint(0, 16, (2, 4, 4))
    quant = model.quantize.get_codebook_entry(tokens.reshape(-1), (2, 4, 4, 4))
    decoded = model.decode(quant, force_not_quantize=True).sample

legacy = {}
for key, value in model.state_dict().items():
    for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
        key = key.replace(f".{new}.", f".{old}.")
    legacy[key] = value.clone()
assert any(".proj_attn." in k for k in legacy)
torch.save(legacy, os.path.join(here, "tiny_legacy.bin"))
with open(os.path.join(here, "tiny_legacy_config.json"), "w") as f:
    f.write(model.to_json_string())
save_file(
    {
        "images": images.contiguous(),
        "encode.latents": latents.contiguous(),
        "encode.indices": indices.to(torch.int64).contiguous(),
        "tokens": tokens.to(torch.int64).contiguous(),
        "decode.images": decoded.contiguous(),
    },
    os.path.join(here, "tiny_legacy_expected.safetensors"),
)
print("wrote", sorted(os.listdir(here)))
