"""Interoperability check of a model exported by `vqd train`: load every component of the
exported diffusers-layout folder with diffusers / transformers, one by one as the reference
pipeline does, run diffusers' VQDiffusionPipeline on it with recorded Gumbel uniforms, and write
the tokens after every step, the final tokens, the image and the uniforms next to the model
(`reference_outputs.safetensors` + `.json`). The Rust test `vq-pipeline/tests/interop.rs` replays
the uniforms through `vqd`'s pipeline and must produce exactly these tokens.

    "$REFERENCE_PYTHON" reference/check_exported.py [FOLDER]

FOLDER defaults to vq-pipeline/tests/data/exported_tiny (made by
`cargo test -p vq-pipeline --test interop -- --ignored`). Deterministic: one thread, fixed seeds.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets the deterministic torch settings on import)

import torch  # noqa: E402
from diffusers import Transformer2DModel, VQDiffusionScheduler, VQModel  # noqa: E402
from diffusers.pipelines.deprecated.vq_diffusion.pipeline_vq_diffusion import (  # noqa: E402
    LearnedClassifierFreeSamplingEmbeddings,
    VQDiffusionPipeline,
)
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

PROMPTS = ["a red square", "a blue circle on the left"]


def load_exported(folder):
    """Every component of the exported folder through its own diffusers / transformers class."""
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "VQDiffusionPipeline", index
    pipe = VQDiffusionPipeline(
        vqvae=VQModel.from_pretrained(str(folder / "vqvae")).eval(),
        text_encoder=CLIPTextModel.from_pretrained(str(folder / "text_encoder")).eval(),
        tokenizer=CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
        transformer=Transformer2DModel.from_pretrained(str(folder / "transformer")).eval(),
        scheduler=VQDiffusionScheduler.from_pretrained(str(folder / "scheduler")),
        learned_classifier_free_sampling_embeddings=LearnedClassifierFreeSamplingEmbeddings.from_pretrained(
            str(folder / "learned_classifier_free_sampling_embeddings")
        ).eval(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else mf.ROOT / "vq-pipeline/tests/data/exported_tiny"
    pipe = load_exported(folder)
    ts = mf.TensorSet()
    with torch.no_grad():
        runs = {
            "guided": mf.run_pipeline(pipe, ts, "guided", PROMPTS, 3.0, 0.9, 7),
            "unguided": mf.run_pipeline(pipe, ts, "unguided", PROMPTS, 1.0, 1.0, 8),
        }
    extra = {
        "generator": "reference/check_exported.py",
        "runs": runs,
        "versions": {"torch": torch.__version__, "diffusers": mf.diffusers.__version__, "transformers": mf.transformers.__version__},
    }
    ts.save(folder / "reference_outputs.safetensors", folder / "reference_outputs.json", extra)
    print("wrote", folder / "reference_outputs.safetensors", sorted(runs))


if __name__ == "__main__":
    main()
