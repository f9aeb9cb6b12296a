"""Encode a batch of 2 prompts with transformers' CLIPTextModel at the real ViT-B/32 text size
(random weights, seed 0) and compare time and output with clip-text's Rust example, same run.

    $REFERENCE_PYTHON clip-text/benches/compare_transformers.py [OUT_DIR] [--no-rust]

Writes OUT_DIR/text_encoder/{config.json, model.safetensors} (~250 MB, f32) and
OUT_DIR/reference.safetensors (input_ids, last_hidden_state), times transformers (median of 10
after 2 warm-ups, torch.no_grad, default threads), then runs
`cargo run -p clip-text --example encode_bench -- OUT_DIR` from the workspace root, which loads the
same weights, times candle and prints the max deviation. Not needed by the tests.
"""

import os
import statistics
import subprocess
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = os.path.abspath(args[0] if args else "/tmp/clip-b32-random")
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, projection_dim=512,
    )
    model = CLIPTextModel(config).eval()
    # transformers' init leaves LayerNorms at 1/0 and biases at 0: perturb them so the test sees them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(os.path.join(out, "text_encoder"), safe_serialization=True)

    first = [49406, 320, 11798, 4298, 1629, 530, 518, 2831, 269, 49407]  # "A teddy bear playing in the pool."
    second = [49406] + [1000 + 37 * i for i in range(20)] + [49407]
    ids = torch.tensor([r + [0] * (77 - len(r)) for r in (first, second)], dtype=torch.int64)
    with torch.no_grad():
        for _ in range(2):
            model(ids)
        times = []
        for _ in range(10):
            start = time.perf_counter()
            hidden = model(ids).last_hidden_state
            times.append((time.perf_counter() - start) * 1e3)
    save_file({"input_ids": ids, "last_hidden_state": hidden.contiguous()},
              os.path.join(out, "reference.safetensors"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"transformers CLIPTextModel: encode (2, 77) -> (2, 77, 512): median "
          f"{statistics.median(times):.1f} ms, min {min(times):.1f} ms over 10 runs")
    if "--no-rust" in sys.argv:
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    root = os.environ.get("CLIP_TEXT_WORKSPACE", root)
    cmd = ["cargo", "run", "-q", "-p", "clip-text", "--example", "encode_bench", "--", out]
    print("$", " ".join(cmd))
    subprocess.run(cmd, cwd=root, check=True)


if __name__ == "__main__":
    main()
