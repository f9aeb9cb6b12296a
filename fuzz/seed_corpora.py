"""Writes the fuzz targets' seed corpora (small, committed) from the repository's own files.

Run once with the reference venv (it uses torch to write small .bin checkpoints and
transformers to export a pruned CLIP tokenizer.json):

    $REFERENCE_PYTHON fuzz/seed_corpora.py
"""
import json
import pathlib
import shutil

import torch
from transformers import CLIPTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def seed(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


# configs: the first byte selects the parser (see fuzz_targets/configs.rs).
for model in ["models/shape-world", "fixtures/pipeline_learnable"]:
    m = ROOT / model
    files = [
        (0, m / "transformer/config.json"),
        (1, m / "vqvae/config.json"),
        (2, m / "text_encoder/config.json"),
        (3, m / "scheduler/scheduler_config.json"),
        (4, m / "model_index.json"),
        (5, m / "generation_config.json"),
        (6, m / "learned_classifier_free_sampling_embeddings/config.json"),
    ]
    for kind, path in files:
        if path.is_file():
            seed("configs", f"{model.replace('/', '_')}_{kind}", bytes([kind]) + path.read_bytes())

# safetensors: the small fixture files.
for path in sorted((ROOT / "fixtures").rglob("*.safetensors")):
    if path.stat().st_size <= 64 * 1024:
        seed("safetensors", "_".join(path.relative_to(ROOT).parts), path.read_bytes())

# torch .bin: state dicts with the dtypes and layouts torch.save writes.
tiny = ROOT / "clip-text/tests/data/tiny_bin/pytorch_model.bin"
seed("torch_bin", "clip_tiny.bin", tiny.read_bytes())
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
for name, state in {
    "f32.bin": {"w": base, "b": torch.zeros(6)},
    "mixed.bin": {"h": base.half(), "bf": base.bfloat16(), "i": torch.arange(5), "d": base.double()},
    "views.bin": {"t": base.t(), "s": base[:, 1:3], "shared": base[0]},
    "nested.bin": {"state_dict": {"a": {"b": base}}, "step": 3, "names": ["x", "y"]},
}.items():
    path = CORPUS / "torch_bin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)

# tokenizer.json: CLIP's tokenizer pruned to its first 400 tokens (plus the specials).
tok = CLIPTokenizerFast.from_pretrained(ROOT / "models/shape-world/tokenizer")
spec = json.loads(tok.backend_tokenizer.to_str())
vocab = spec["model"]["vocab"]
keep = {k: v for k, v in vocab.items() if v < 400 or k.startswith("<|")}
spec["model"]["vocab"] = keep
merges = spec["model"]["merges"]


def parts(m):
    return m.split(" ") if isinstance(m, str) else m


spec["model"]["merges"] = [
    m for m in merges if all(p in keep for p in parts(m)) and "".join(parts(m)) in keep
][:200]
seed("tokenizer_files", "clip_pruned.json", json.dumps(spec).encode())

# prompts.
for i, text in enumerate([
    "a small red circle in the top left",
    "top left: small red circle",
    "a red circle left of a blue square",
    "ÅÄÖ 🎨 <|endoftext|> " * 20,
    "",
]):
    seed("prompts", f"prompt_{i}", text.encode())

# edit inputs: 18 header bytes, then a PNG source and a PNG mask.
shutil.rmtree(CORPUS / "edit_inputs", ignore_errors=True)
from PIL import Image
import io


def png(img):
    b = io.BytesIO()
    img.save(b, format="PNG")
    return b.getvalue()


src = png(Image.new("RGB", (40, 30), (200, 10, 10)))
mask = png(Image.new("L", (16, 16), 255))
head = bytearray(18)
head[0:2] = (32).to_bytes(2, "little")
head[2:4] = (32).to_bytes(2, "little")
head[4], head[5] = 7, 7
head[6:8] = len(src).to_bytes(2, "little")
head[8:10], head[10:12], head[12:14], head[14:16] = (0).to_bytes(2, "little"), (0).to_bytes(2, "little"), (16).to_bytes(2, "little"), (16).to_bytes(2, "little")
head[16:18] = (32).to_bytes(2, "little")
seed("edit_inputs", "square", bytes(head) + src + mask)

# options.
for i, o in enumerate([
    {"prompts": ["a red circle"], "num_images_per_prompt": 3, "sampler": "strided", "steps": 10,
     "guidance_scale": 1.0, "truncation": {"type": "top_r", "value": 0.86},
     "null_condition": "auto", "prior_weight": 1.0, "unmask_per_call": None},
    {"prompts": ["a", ""], "num_images_per_prompt": 2, "sampler": "purity", "steps": None,
     "guidance_scale": 5.0, "truncation": {"type": "top_k", "value": 8},
     "null_condition": "learned", "prior_weight": 2.0, "unmask_per_call": 4},
]):
    seed("options", f"options_{i}", bytes([99]) + json.dumps(o).encode())
print("seed corpora written to", CORPUS)
