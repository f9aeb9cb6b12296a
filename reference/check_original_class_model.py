#!/usr/bin/env python3
"""Checks `class_model_log_probs` of make_original_fixtures.py (our plain-torch re-implementation of
the original class-conditional network, which produced fixtures/original/class_reference.*)
against the original repository's own modules: `Block` (attn_type 'selfcondition', mlp_type
'conv_mlp'), `DalleMaskImageEmbedding` and the `to_logits` head of `Condition2ImageTransformer`,
run on the CPU with the same weights.

    VQ_DIFFUSION_SRC="$CLONE_OF_VQ_DIFFUSION" python reference/check_original_class_model.py

(the original code is not vendored; any clone of microsoft/VQ-Diffusion works; needs einops).
"""

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_original_fixtures as mo  # noqa: E402

src = os.environ.get("VQ_DIFFUSION_SRC")
if not src:
    sys.exit("set VQ_DIFFUSION_SRC to a clone of microsoft/VQ-Diffusion")
sys.path.insert(0, src)
from image_synthesis.modeling.embeddings.dalle_mask_image_embedding import DalleMaskImageEmbedding  # noqa: E402
from image_synthesis.modeling.transformers.transformer_utils import Block  # noqa: E402

C = mo.CLASS
worst = 0.0
for rows, seed in ((C["labels"], 81), (C["labels"] + 1, 91)):
    sd = mo.class_model_state(rows, seed)
    emb = DalleMaskImageEmbedding(num_embed=C["classes"], spatial_size=[C["table"], C["table"]], embed_dim=C["width"])
    blocks = [
        Block(class_type="adalayernorm", class_number=rows, n_embd=C["width"], n_head=C["heads"], seq_len=C["grid"] ** 2,
              attn_pdrop=0, resid_pdrop=0, mlp_hidden_times=4, activate="GELU2", attn_type="selfcondition",
              content_spatial_size=[C["grid"], C["grid"]], diffusion_step=C["steps"], timestep_type="adalayernorm", mlp_type="conv_mlp")
        for _ in range(C["layers"])
    ]
    head = torch.nn.Sequential(torch.nn.LayerNorm(C["width"]), torch.nn.Linear(C["width"], C["classes"]))
    with torch.no_grad():
        emb.load_state_dict({k[len("content_emb."):]: v for k, v in sd.items() if k.startswith("content_emb.")})
        for i, b in enumerate(blocks):
            b.load_state_dict({k[len(f"blocks.{i}."):]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")})
            b.eval()
        head.load_state_dict({k[len("to_logits."):]: v for k, v in sd.items() if k.startswith("to_logits.")})
        g = torch.Generator().manual_seed(5)
        x_t = torch.randint(0, C["classes"] + 1, (2, C["grid"] ** 2), generator=g)
        for t, labels in ((3, [0, 4]), (7, [C["labels"], C["labels"]])):
            h = emb(x_t.clone())
            for b in blocks:
                # the original passes the label as the float condition and casts it back
                h, _ = b(h, torch.tensor(labels, dtype=torch.float), torch.full((2,), t, dtype=torch.long))
            logits = head(h).transpose(1, 2)
            original = F.log_softmax(logits.double(), dim=1).float()
            ours = mo.class_model_log_probs(sd, x_t, t, torch.tensor(labels))
            d = (original - ours).abs().max().item()
            worst = max(worst, d)
            print(f"class table rows {rows}, t {t}, labels {labels}: max |original - ours| = {d:.3g}")
assert worst < 1e-5, worst
print("ok: the re-implementation matches the original modules")
