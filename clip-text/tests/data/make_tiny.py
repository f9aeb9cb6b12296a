"""Regenerates the tiny transformers references in this folder (not needed by the tests):

    $REFERENCE_PYTHON clip-text/tests/data/make_tiny.py

* tiny_bin/: quick_gelu CLIPTextModel, f32 `pytorch_model.bin` written with torch.save in the old
  hub layout (`text_model.` prefix plus a `position_ids` buffer, like the ITHQ text_encoder);
* tiny_gelu_f16/: exact-gelu CLIPTextModel, f16 `model.safetensors` in transformers 5's layout
  (no `text_model.` prefix); its reference is computed in f32 from the f16-rounded weights;
* reference.safetensors: `<name>.input_ids` (2, 9) and `<name>.last_hidden_state` (2, 9, 16).
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

HERE = os.path.dirname(os.path.abspath(__file__))


def build(act: str, seed: int) -> CLIPTextModel:
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=9, hidden_act=act,
                            layer_norm_eps=1e-5, projection_dim=16)
    model = CLIPTextModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return model


def main() -> None:
    ids = torch.tensor([[49, 3, 7, 11, 2, 0, 0, 0, 0], [49, 5, 5, 2, 0, 0, 0, 0, 0]], dtype=torch.int64)
    out = {}

    model = build("quick_gelu", 1)
    folder = os.path.join(HERE, "tiny_bin")
    os.makedirs(folder, exist_ok=True)
    state = {f"text_model.{k}": v.clone() for k, v in model.state_dict().items()}
    state["text_model.embeddings.position_ids"] = torch.arange(9).unsqueeze(0)
    torch.save(state, os.path.join(folder, "pytorch_model.bin"))
    model.config.to_json_file(os.path.join(folder, "config.json"))
    with torch.no_grad():
        out["tiny_bin.input_ids"] = ids.clone()
        out["tiny_bin.last_hidden_state"] = model(ids).last_hidden_state.contiguous()

    model = build("gelu", 2)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    folder = os.path.join(HERE, "tiny_gelu_f16")
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()},
              os.path.join(folder, "model.safetensors"))
    model.config.to_json_file(os.path.join(folder, "config.json"))
    with torch.no_grad():
        out["tiny_gelu_f16.input_ids"] = ids.clone()
        out["tiny_gelu_f16.last_hidden_state"] = model(ids).last_hidden_state.contiguous()
    save_file(out, os.path.join(HERE, "reference.safetensors"))
    print(json.dumps({k: list(v.shape) for k, v in out.items()}))


if __name__ == "__main__":
    main()
