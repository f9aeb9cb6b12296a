#!/usr/bin/env python3
"""Generate the golden fixtures in `fixtures/` from diffusers / transformers.

Run from the repository root:

    python reference/make_fixtures.py

(with the packages pinned in `reference/requirements.txt`; see `fixtures/README.md`). The script is
deterministic: it runs single-threaded on the CPU with fixed seeds, writes safetensors files with
the fixed metadata {"format": "pt"} and JSON with sorted keys, patches the random serialization id
out of the one `torch.save` file, and running it twice gives byte-identical files.
Everything under `fixtures/` except `README.md` is deleted and rewritten.
"""

import gzip
import hashlib
import html
import io
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["DIFFUSERS_VERBOSITY"] = "error"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
torch.use_deterministic_algorithms(True, warn_only=True)
warnings.filterwarnings("ignore")

import diffusers  # noqa: E402
import diffusers.schedulers.scheduling_vq_diffusion as svq  # noqa: E402
import open_clip  # noqa: E402
import safetensors  # noqa: E402
import transformers  # noqa: E402
from diffusers import Transformer2DModel, VQDiffusionScheduler, VQModel  # noqa: E402
from diffusers.pipelines.deprecated.vq_diffusion.pipeline_vq_diffusion import (  # noqa: E402
    LearnedClassifierFreeSamplingEmbeddings,
    VQDiffusionPipeline,
)
from open_clip.tokenizer import SimpleTokenizer, bytes_to_unicode  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"

TEDDY = "A teddy bear playing in the pool."
TEDDY_IDS = [49406, 320, 11798, 4298, 1629, 530, 518, 2831, 269, 49407]
SOT, EOT, PAD = 49406, 49407, 0


# ----------------------------------------------------------------------------------------------
# small helpers


_SCALAR_LIST = re.compile(r"\[\s*((?:-?[0-9][0-9.eE+-]*|true|false|null)(?:,\s*(?:-?[0-9][0-9.eE+-]*|true|false|null))*)\s*\]")


def dumps(obj, compact_lists=True):
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)
    if compact_lists:  # lists of numbers on one line
        text = _SCALAR_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    return text + "\n"


def write_json(path, obj, compact_lists=True):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(obj, compact_lists), encoding="utf-8")


def write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class TensorSet:
    """Ordered collection of named tensors plus a description of each, for one safetensors file."""

    def __init__(self):
        self.tensors = {}
        self.info = {}

    def add(self, name, t, what):
        assert name not in self.tensors, name
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            assert t.dtype == torch.float32, (name, t.dtype)
        else:
            t = t.to(torch.int64)
        self.tensors[name] = t.clone()
        self.info[name] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "what": what}

    def save(self, st_path, json_path=None, extra=None):
        st_path = Path(st_path)
        st_path.parent.mkdir(parents=True, exist_ok=True)
        save_file(self.tensors, str(st_path), metadata={"format": "pt"})
        if json_path is not None:
            obj = {"file": st_path.name, "tensors": self.info}
            if extra:
                obj.update(extra)
            write_json(json_path, obj)


def perturb_(model, gen, scale=0.02):
    """p += scale * randn for EVERY parameter (so zero/one-initialised tensors are exercised)."""
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.numel() == 0:
                continue
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def fix_torch_save_serialization_id(path):
    """torch.save writes a random `.data/serialization_id`; overwrite it with zeros (same length,
    stored uncompressed) and patch the CRC-32 in the local header and the central directory."""
    data = bytearray(Path(path).read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos = [i for i in zf.infolist() if i.filename.endswith(".data/serialization_id")]
        assert len(infos) <= 1
        if not infos:
            return
        info = infos[0]
        assert info.compress_type == zipfile.ZIP_STORED
    new = b"0" * info.file_size
    new_crc = zlib.crc32(new) & 0xFFFFFFFF
    # local file header
    off = info.header_offset
    assert data[off : off + 4] == b"PK\x03\x04"
    name_len, extra_len = struct.unpack("<HH", data[off + 26 : off + 30])
    start = off + 30 + name_len + extra_len
    data[start : start + info.file_size] = new
    data[off + 14 : off + 18] = struct.pack("<I", new_crc)
    if info.flag_bits & 0x08:  # data descriptor after the data
        d = start + info.file_size
        if data[d : d + 4] == b"PK\x07\x08":
            d += 4
        data[d : d + 4] = struct.pack("<I", new_crc)
    # central directory entry
    name = info.filename.encode()
    pos = 0
    found = 0
    while True:
        pos = data.find(b"PK\x01\x02", pos)
        if pos < 0:
            break
        n_len = struct.unpack("<H", data[pos + 28 : pos + 30])[0]
        if bytes(data[pos + 46 : pos + 46 + n_len]) == name:
            data[pos + 16 : pos + 20] = struct.pack("<I", new_crc)
            found += 1
        pos += 4
    assert found == 1
    Path(path).write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None


class GumbelRecorder:
    """Replacement for diffusers.schedulers.scheduling_vq_diffusion.gumbel_noised: draws the uniforms
    from its own seeded CPU generator (ignoring the generator argument), records them in call order,
    and computes the same formula as diffusers."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.uniforms = []

    def __call__(self, logits, generator):
        uniform = torch.rand(logits.shape, device=logits.device, generator=self.gen)
        self.uniforms.append(uniform.clone())
        gumbel_noise = -torch.log(-torch.log(uniform + 1e-30) + 1e-30)
        return gumbel_noise + logits

    def __enter__(self):
        self._orig = svq.gumbel_noised
        svq.gumbel_noised = self
        return self

    def __exit__(self, *exc):
        svq.gumbel_noised = self._orig


# ----------------------------------------------------------------------------------------------
# 1. tokenizer


def build_tokenizer():
    out = FIX / "tokenizer"
    bpe_path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    assert len(merges) == 48894
    out.mkdir(parents=True, exist_ok=True)
    # compact one-line vocab.json in id order (like the hub file), merges.txt with the version header
    (out / "vocab.json").write_text(
        json.dumps({v: i for i, v in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
    )
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tok = {"content": None, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    special = {
        "bos_token": dict(tok, content="<|startoftext|>"),
        "eos_token": dict(tok, content="<|endoftext|>"),
        "pad_token": "!",
        "unk_token": dict(tok, content="<|endoftext|>"),
    }
    write_json(out / "special_tokens_map.json", special)  # 460 bytes, like the ITHQ hub file
    config = {
        "add_prefix_space": False,
        "bos_token": special["bos_token"],
        "do_lower_case": True,
        "eos_token": special["eos_token"],
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": "!",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": special["unk_token"],
    }
    write_json(out / "tokenizer_config.json", config)
    return special, config


TOKENIZER_PROMPTS = [
    ("plain", TEDDY),
    ("punctuation", "Hello, world! Isn't it great? (yes) -- a/b; c:d"),
    ("exclamations", "wow!!! so cool! !x"),
    ("numbers", "3 cats and 12 dogs in 2024, pi=3.14159"),
    ("emoji", "a \U0001F436 wearing a \U0001F3A9 and sunglasses \U0001F60E"),
    ("accents", "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c0 la carte"),
    ("combining_accent_nfd", "cafe\u0301 nai\u0308ve"),
    ("cjk", "\u4e00\u53ea\u732b\u5728\u5c4b\u9876\u4e0a and \u6771\u4eac\u30bf\u30ef\u30fc"),
    ("html_entities", "&amp; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;x&#39;"),
    ("whitespace", "  spaces   and\ttabs\nand newlines \n\n\r\n end\u00a0nbsp  "),
    ("empty", ""),
    ("mixed_case", "MiXeD CaSe PROMPT With CAPS and iPhone"),
    ("curly_quotes_dashes", "\u201ccurly quotes\u201d and \u2018single\u2019 \u2014 em dash\u2026"),
    ("mojibake", "caf\u00c3\u00a9 mojibake"),
    ("contractions", "it's we're they've I'm you'll he'd IT'S"),
    ("literal_special_tokens", "<|startoftext|>literal special<|endoftext|> tokens"),
    (
        "long",
        "a highly detailed photograph of a small red fox sitting in a snowy forest clearing at dawn, "
        "soft golden light filtering through tall pine trees, frost on the branches, breath visible "
        "in the cold air, shallow depth of field, bokeh, award winning wildlife photography, shot on "
        "a full frame camera with a telephoto lens, ultra sharp focus on the eyes, muted colour palette, "
        "peaceful winter morning atmosphere, national geographic style",
    ),
]


def original_clip_style(simple_ids):
    """VQ-Diffusion/CLIP `tokenize`: [SOT] + bpe + [EOT], truncated to 77 with the last slot forced
    to EOT when too long, then zero-padded."""
    ids = [SOT] + simple_ids + [EOT]
    if len(ids) > 77:
        ids = ids[:77]
        ids[76] = EOT
    return ids + [0] * (77 - len(ids))


def tokenizer_cases(tok):
    simple = SimpleTokenizer()
    fast_cls = getattr(transformers, "CLIPTokenizerFast", None)
    fast = fast_cls.from_pretrained(str(FIX / "tokenizer")) if fast_cls is not None else None
    cases = []
    any_fast_diff = False
    for name, prompt in TOKENIZER_PROMPTS:
        enc = tok(prompt, padding="max_length", max_length=tok.model_max_length)
        ids = list(enc.input_ids)
        case = {
            "name": name,
            "prompt": prompt,
            "ids_untruncated": ids,
            "num_ids_untruncated": len(ids),
            "ids_diffusers": ids[:77],
            "tokens": tok.convert_ids_to_tokens(ids),
            # the original `tokenize` lower-cases before its tokenizer runs ftfy (which then cannot
            # repair mojibake such as "cafÃ©" → "cafã©")
            "original_bpe_ids": simple.encode(prompt.lower()),
        }
        case["original_vqdiffusion_ids"] = original_clip_style(case["original_bpe_ids"])
        case["original_differs_from_diffusers"] = case["original_vqdiffusion_ids"] != case["ids_diffusers"]
        if len(ids) > 77:
            trunc = ids[:77]
            trunc[76] = EOT
            case["ids_original_truncation"] = trunc
            # the same via truncation=True (diffusers uses this only for the empty negative prompt)
            case["ids_hf_truncation_true"] = list(
                tok(prompt, padding="max_length", max_length=77, truncation=True).input_ids
            )
        if fast is not None:
            fids = list(fast(prompt, padding="max_length", max_length=77).input_ids)
            if fids != ids:
                case["ids_fast"] = fids
                any_fast_diff = True
        cases.append(case)
    teddy = cases[0]
    assert teddy["ids_untruncated"][:10] == TEDDY_IDS, teddy["ids_untruncated"][:10]
    assert all(v == PAD for v in teddy["ids_untruncated"][10:]) and len(teddy["ids_untruncated"]) == 77
    long = [c for c in cases if c["name"] == "long"][0]
    assert long["num_ids_untruncated"] > 77
    fast_note = (
        "transformers.CLIPTokenizerFast is the same class as CLIPTokenizer in this transformers version "
        "(no separate slow/python tokenizer exists)"
        if fast_cls is CLIPTokenizer
        else "CLIPTokenizerFast compared separately"
    )
    obj = {
        "tokenizer": "transformers.CLIPTokenizer loaded from fixtures/tokenizer (pad '!' = id 0, model_max_length 77)",
        "call": "tokenizer(prompt, padding='max_length', max_length=77) -- no truncation, exactly like "
        "VQDiffusionPipeline._encode_prompt",
        "fields": {
            "ids_untruncated": "full ids from the HF tokenizer (may be longer than 77 for the long prompt)",
            "ids_diffusers": "ids_untruncated[:77] (what the pipeline feeds the text encoder)",
            "ids_original_truncation": "only when > 77: first 77 with position 76 overwritten by 49407 (original VQ-Diffusion/CLIP rule)",
            "ids_hf_truncation_true": "only when > 77: tokenizer(..., truncation=True) for comparison",
            "ids_fast": "present only if CLIPTokenizerFast gives different ids",
            "tokens": "HF token strings of ids_untruncated",
            "original_bpe_ids": "open_clip SimpleTokenizer.encode(prompt) (= original CLIP / VQ-Diffusion BPE: ftfy.fix_text + html.unescape x2 + whitespace clean + lower), no SOT/EOT",
            "original_vqdiffusion_ids": "[49406] + original_bpe_ids + [49407], truncated to 77 with EOT forced in slot 76, zero padded: what the ORIGINAL VQ-Diffusion feeds CLIP",
            "original_differs_from_diffusers": "whether original_vqdiffusion_ids != ids_diffusers",
        },
        "fast_tokenizer": fast_note,
        "any_fast_difference": any_fast_diff,
        "notes": [
            "transformers 5 CLIPTokenizer normalises with NFC + collapse whitespace + lowercase only: no ftfy, no html.unescape",
            "the pad token '!' is registered as a special (added) token, so every literal '!' in a prompt is split off and "
            "encoded as id 0 (not the BPE token '!</w>' = 256 the original tokenizer produces)",
        ],
        "cases": cases,
    }
    write_json(FIX / "tokenizer_cases.json", obj)
    return cases


# ----------------------------------------------------------------------------------------------
# 2. scheduler


def scheduler_fixtures():
    specs = [
        ("ithq", dict(num_vec_classes=4097, num_train_timesteps=100), False, 12),
        ("small", dict(num_vec_classes=6, num_train_timesteps=7), True, 12),
        (
            "small_custom",
            dict(
                num_vec_classes=9,
                num_train_timesteps=10,
                alpha_cum_start=0.9,
                alpha_cum_end=0.1,
                gamma_cum_start=0.05,
                gamma_cum_end=0.8,
            ),
            True,
            12,
        ),
        ("medium", dict(num_vec_classes=65, num_train_timesteps=100), True, 12),
    ]
    summary = {}
    for si, (name, cfg, with_io, n_pix) in enumerate(specs):
        sched = VQDiffusionScheduler(**cfg)
        sched.save_pretrained(str(FIX / "scheduler" / name))
        ts = TensorSet()
        for tname in ["log_at", "log_bt", "log_ct", "log_cumprod_at", "log_cumprod_bt", "log_cumprod_ct"]:
            ts.add(tname, getattr(sched, tname), f"scheduler.{tname} as stored by diffusers (float32)")
        ts.add("timesteps", sched.timesteps, "scheduler.timesteps after construction (T-1 .. 0)")
        K = cfg["num_vec_classes"]
        T = cfg["num_train_timesteps"]
        # config as written to scheduler_config.json (sched.config also holds the unordered internal
        # `_use_default_values` list, which would make this file non-deterministic)
        saved_cfg = json.loads((FIX / "scheduler" / name / "scheduler_config.json").read_text())
        extra = {"config": saved_cfg, "num_vec_classes": K, "mask_class": K - 1, "T": T}
        if with_io:
            g = torch.Generator().manual_seed(1000 + si)
            logits = torch.randn(2, K - 1, n_pix, generator=g) * 3.0
            log_p_x_0 = torch.log_softmax(logits, dim=1)
            x_t = torch.randint(0, K - 1, (2, n_pix), generator=g)
            masked = torch.rand(2, n_pix, generator=g) < 0.5
            masked[0, 0] = True
            masked[1, 1] = False
            x_t = torch.where(masked, torch.full_like(x_t, K - 1), x_t)
            ts.add("log_p_x_0", log_p_x_0, "input: log_softmax(randn(2, K-1, N) * 3, dim=1)")
            ts.add("x_t", x_t, "input: tokens (2, N), mask class = K-1")
            with_intermediates = K <= 17  # keep the K = 65 case small
            log_onehot = svq.index_to_log_onehot(x_t, K)
            if with_intermediates:
                ts.add("log_onehot_x_t", log_onehot, "index_to_log_onehot(x_t, K): (2, K, N)")
            t_list = sorted({0, 1, T // 2, T - 2, T - 1})
            extra["t_values"] = t_list
            for t in t_list:
                ts.add(
                    f"q_posterior.t{t}",
                    sched.q_posterior(log_p_x_0, x_t, t),
                    f"scheduler.q_posterior(log_p_x_0, x_t, t={t}) (python int t): (2, K, N)",
                )
                if not with_intermediates:
                    continue
                for cumulative, suffix, shape in [(True, "cumulative", "(2, K-1, N)"), (False, "step", "(2, K, N)")]:
                    ts.add(
                        f"log_Q.t{t}.{suffix}",
                        sched.log_Q_t_transitioning_to_known_class(
                            t=t, x_t=x_t, log_onehot_x_t=log_onehot, cumulative=cumulative
                        ),
                        f"log_Q_t_transitioning_to_known_class(t={t}, x_t, log_onehot_x_t, cumulative={cumulative}): {shape}",
                    )
            with GumbelRecorder(2000 + si) as rec:
                for t in t_list:
                    n_before = len(rec.uniforms)
                    out = sched.step(log_p_x_0, timestep=torch.tensor(t), sample=x_t, generator=None).prev_sample
                    assert len(rec.uniforms) == n_before + 1
                    shape = "(2, K-1, N)" if t == 0 else "(2, K, N)"
                    ts.add(
                        f"step.t{t}.uniforms",
                        rec.uniforms[-1],
                        f"uniforms U drawn by gumbel_noised in step(log_p_x_0, t={t}, x_t): {shape}; "
                        "noise = -log(-log(U + 1e-30) + 1e-30)",
                    )
                    ts.add(
                        f"step.t{t}.prev_sample",
                        out,
                        f"step(model_output=log_p_x_0, timestep=tensor({t}), sample=x_t).prev_sample: (2, N) int64",
                    )
        ts.save(FIX / "scheduler" / f"{name}.safetensors", FIX / "scheduler" / f"{name}.json", extra)
        summary[name] = sorted(ts.tensors)
    return summary


# ----------------------------------------------------------------------------------------------
# 3. tiny models

TEXT_HIDDEN = 8


def build_text_encoder():
    torch.manual_seed(10)
    cfg = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=TEXT_HIDDEN,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    model = CLIPTextModel(cfg).eval()
    perturb_(model, torch.Generator().manual_seed(11))
    out = FIX / "text_encoder"
    # transformers 5 saves a freshly initialised CLIPTextModel WITHOUT the `text_model.` prefix, but
    # keeps the prefix when the model was loaded from a prefixed (hub-style, e.g. ITHQ) checkpoint.
    # Store the hub spelling: save, add the prefix, reload, and let transformers re-save it.
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        sd = load_file(str(Path(tmp) / "model.safetensors"))
        assert not any(k.startswith("text_model.") for k in sd)
        save_file({"text_model." + k: v for k, v in sd.items()}, str(Path(tmp) / "model.safetensors"), metadata={"format": "pt"})
        reloaded = CLIPTextModel.from_pretrained(tmp).eval()
        reloaded.save_pretrained(str(out), safe_serialization=True)
    sd2 = load_file(str(out / "model.safetensors"))
    assert sorted(sd2) == sorted("text_model." + k for k in sd), sorted(sd2)[:3]
    for k, v in sd.items():
        assert torch.equal(sd2["text_model." + k], v), k
    return out


def build_transformer(seed):
    torch.manual_seed(seed)
    model = Transformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        cross_attention_dim=TEXT_HIDDEN,
        num_vector_embeds=17,
        sample_size=4,
        num_embeds_ada_norm=10,
        activation_fn="geglu-approximate",
        attention_bias=True,
        dropout=0.0,
    ).eval()
    perturb_(model, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        model.out.weight.mul_(4.0)  # peakier log-probs so truncation and guidance matter
    return model


def build_vqvae(seed):
    torch.manual_seed(seed)
    model = VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        act_fn="silu",
        latent_channels=8,
        sample_size=8,
        num_vq_embeddings=16,
        norm_num_groups=4,
        vq_embed_dim=4,
    ).eval()
    perturb_(model, torch.Generator().manual_seed(seed + 1))
    # codebook on the scale of the encoder latents so that encoding uses several codes
    with torch.no_grad():
        img = fixed_image()
        h = model.encode(img).latents
        mean = h.mean(dim=(0, 2, 3))
        std = h.std()
        g = torch.Generator().manual_seed(seed + 2)
        model.quantize.embedding.weight.copy_(mean + std * torch.randn(16, 4, generator=g))
    return model


def fixed_image():
    H = W = 8
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    base = torch.stack(
        [
            torch.sin(xx * 0.7 + yy * 0.3),
            torch.cos(xx * 0.4 - yy * 0.9),
            torch.sin((xx + yy) * 0.5) * torch.cos(xx * 0.2),
        ]
    )
    g = torch.Generator().manual_seed(77)
    img = 0.8 * base + 0.1 * torch.randn(3, H, W, generator=g)
    return img.clamp(-1, 1).unsqueeze(0)


LEGACY_MAP = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def legacy_vq_state(sd):
    out = {}
    for k, v in sd.items():
        nk = k
        if ".attentions." in k:
            for new, old in LEGACY_MAP.items():
                if f".{new}." in k:
                    nk = k.replace(f".{new}.", f".{old}.")
        out[nk] = v.contiguous()
    return out


# ----------------------------------------------------------------------------------------------
# 4. pipelines and reference outputs

PIPELINE_PROMPTS = [TEDDY, "an oil painting of a lighthouse at dusk"]


def resolve_shared(folder):
    """A component folder holding only a `SHARED` pointer file stands for the folder it names."""
    pointer = Path(folder) / "SHARED"
    return (Path(folder) / pointer.read_text().strip()).resolve() if pointer.exists() else Path(folder)


def load_pipeline(pdir):
    vqvae = VQModel.from_pretrained(str(resolve_shared(pdir / "vqvae"))).eval()
    text_encoder = CLIPTextModel.from_pretrained(str(resolve_shared(pdir / "text_encoder"))).eval()
    tokenizer = CLIPTokenizer.from_pretrained(str(FIX / "tokenizer"))
    transformer = Transformer2DModel.from_pretrained(str(pdir), subfolder="transformer").eval()
    scheduler = VQDiffusionScheduler.from_pretrained(str(pdir), subfolder="scheduler")
    emb = LearnedClassifierFreeSamplingEmbeddings.from_pretrained(
        str(pdir), subfolder="learned_classifier_free_sampling_embeddings"
    ).eval()
    pipe = VQDiffusionPipeline(
        vqvae=vqvae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=scheduler,
        learned_classifier_free_sampling_embeddings=emb,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_pipeline(pipe, ts, prefix, prompts, guidance_scale, truncation_rate, seed):
    transformer_outs, truncate_in, truncate_out, sched_in, step_tokens = [], [], [], [], []

    hook = pipe.transformer.register_forward_hook(lambda m, a, o: transformer_outs.append(o.sample.clone()))
    orig_truncate = pipe.truncate

    def truncate(log_p_x_0, rate):
        truncate_in.append(log_p_x_0.clone())
        r = orig_truncate(log_p_x_0, rate)
        truncate_out.append(r.clone())
        return r

    orig_step = pipe.scheduler.step

    def step(model_output, *a, **k):
        sched_in.append(model_output.clone())
        return orig_step(model_output, *a, **k)

    pipe.truncate = truncate
    pipe.scheduler.step = step
    try:
        with GumbelRecorder(seed) as rec:
            out = pipe(
                prompts,
                num_inference_steps=10,
                guidance_scale=guidance_scale,
                truncation_rate=truncation_rate,
                num_images_per_prompt=1,
                output_type="np",
                callback=lambda i, t, x: step_tokens.append((i, int(t), x.clone())),
                callback_steps=1,
            )
    finally:
        hook.remove()
        del pipe.truncate
        del pipe.scheduler.step
    assert len(rec.uniforms) == 10 == len(step_tokens) == len(sched_in)
    # replay check: the recorded scheduler inputs + uniforms reproduce the recorded tokens
    prev = torch.full((len(prompts), 16), 16, dtype=torch.int64)
    for i in range(10):
        t = 9 - i
        mo = sched_in[i]
        logits = mo if t == 0 else pipe.scheduler.q_posterior(mo, prev, torch.tensor(t))
        u = rec.uniforms[i]
        x = (-torch.log(-torch.log(u + 1e-30) + 1e-30) + logits).argmax(dim=1)
        assert torch.equal(x, step_tokens[i][2]), f"replay mismatch at step {i}"
        prev = x
    cfg = guidance_scale > 1.0
    B = len(prompts)
    for i in range(10):
        t = step_tokens[i][1]
        assert t == 9 - i
        ts.add(
            f"{prefix}.step{i}.transformer_log_probs",
            transformer_outs[i],
            f"transformer output at step {i} (t={t}): ({2 * B if cfg else B}, 16, 16)"
            + (" rows [uncond x B, cond x B]" if cfg else ""),
        )
        ts.add(
            f"{prefix}.step{i}.guided_log_probs",
            truncate_in[i],
            f"step {i}: log-probs entering truncate()"
            + (" = u + s(c-u) renormalised by logsumexp" if cfg else " (= transformer output, no CFG)"),
        )
        ts.add(
            f"{prefix}.step{i}.model_log_probs",
            sched_in[i],
            f"step {i}: model_output passed to scheduler.step = truncate(guided, {truncation_rate}).clamp(-70) "
            "(entries dropped by truncation are -70): (B, 16, 16)",
        )
        ts.add(
            f"{prefix}.step{i}.uniforms",
            rec.uniforms[i],
            f"step {i} (t={t}): uniforms drawn by gumbel_noised, shape (B, {'16' if t == 0 else '17'}, 16)",
        )
        ts.add(f"{prefix}.step{i}.tokens", step_tokens[i][2], f"tokens after step {i} (t={t}) via the callback: (B, 16)")
    ts.add(f"{prefix}.final_tokens", step_tokens[-1][2], "final tokens (B, 16) decoded by the VQ-VAE")
    ts.add(
        f"{prefix}.image",
        torch.from_numpy(np.ascontiguousarray(out.images)),
        "pipeline output with output_type='np': (B, 8, 8, 3) float32 in [0, 1] (before any uint8 conversion)",
    )
    return {
        "prompts": prompts,
        "num_inference_steps": 10,
        "guidance_scale": guidance_scale,
        "truncation_rate": truncation_rate,
        "num_images_per_prompt": 1,
        "output_type": "np",
        "gumbel": f"gumbel_noised replaced; uniforms = torch.rand(shape, generator=torch.Generator().manual_seed({seed})) in call order",
        "timesteps": [s[1] for s in step_tokens],
    }


def reference_outputs(pdir, learnable, seed):
    pipe = load_pipeline(pdir)
    ts = TensorSet()
    runs = {}
    tok, te = pipe.tokenizer, pipe.text_encoder
    with torch.no_grad():
        # --- text
        ids = tok(PIPELINE_PROMPTS, padding="max_length", max_length=77, return_tensors="pt").input_ids
        hidden = te(ids)[0]
        ts.add("text.input_ids", ids, "tokenizer(prompts, padding='max_length', max_length=77): (2, 77)")
        ts.add("text.last_hidden_state", hidden, "text_encoder(text.input_ids)[0] (after final LayerNorm): (2, 77, C)")
        ts.add(
            "text.prompt_embeds",
            hidden / hidden.norm(dim=-1, keepdim=True),
            "per-token L2-normalised last_hidden_state (what the pipeline uses): (2, 77, C)",
        )
        eids = tok([""], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        ehidden = te(eids)[0]
        ts.add("text.empty.input_ids", eids, "tokenizer([''], padding='max_length', max_length=77, truncation=True): (1, 77)")
        ts.add("text.empty.last_hidden_state", ehidden, "text_encoder(empty ids)[0]: (1, 77, C)")
        ts.add("text.empty.prompt_embeds", ehidden / ehidden.norm(dim=-1, keepdim=True), "L2-normalised empty-prompt embeddings: (1, 77, C)")
        ts.add(
            "text.encode_prompt_cfg",
            pipe._encode_prompt(PIPELINE_PROMPTS, 1, True),
            "pipe._encode_prompt(prompts, 1, do_classifier_free_guidance=True): (4, 77, C) = [negative x2, prompt x2]; "
            + ("negative = learned embeddings (not normalised)" if learnable else "negative = normalised empty-prompt embeddings"),
        )

        # --- transformer
        g = torch.Generator().manual_seed(seed + 50)
        x_t = torch.randint(0, 16, (2, 16), generator=g)
        x_t[0, ::3] = 16
        x_t[1, 5:11] = 16
        ehs = torch.randn(2, 77, TEXT_HIDDEN, generator=g)
        ehs = ehs / ehs.norm(dim=-1, keepdim=True)
        ts.add("transformer.x_t", x_t, "input tokens (2, 16), mask class 16")
        ts.add("transformer.encoder_hidden_states", ehs, "input context: per-token normalised randn (2, 77, C)")
        for t in [0, 4, 9]:
            ts.add(
                f"transformer.t{t}.log_p_x_0",
                pipe.transformer(x_t, encoder_hidden_states=ehs, timestep=torch.tensor(t)).sample,
                f"transformer(x_t, encoder_hidden_states, timestep=tensor({t})).sample: (2, 16 classes, 16 pixels)",
            )

        # --- VQ-VAE
        vq = pipe.vqvae
        img = fixed_image()
        h = vq.encode(img).latents
        z_q, _, (_, _, idx) = vq.quantize(h)
        ts.add("vqvae.encode.image", img, "input image (1, 3, 8, 8) in [-1, 1]")
        ts.add("vqvae.encode.latents", h, "vqvae.encode(image).latents = quant_conv(encoder(image)): (1, 4, 4, 4)")
        ts.add("vqvae.encode.indices", idx, "quantize(latents) nearest-code indices (argmin cdist), flat (B*4*4,) row-major, int64")
        ts.add(
            "vqvae.encode.z_q",
            z_q,
            "quantize(latents)[0] (straight-through z + (e - z), may differ from the codebook rows by rounding): (1, 4, 4, 4)",
        )
        ts.add(
            "vqvae.encode.z_q_lookup",
            vq.quantize.get_codebook_entry(idx, (1, 4, 4, 4)),
            "get_codebook_entry(indices, (1,4,4,4)) (exact codebook rows): (1, 4, 4, 4)",
        )
        ts.add("vqvae.forward.sample", vq(img).sample, "vqvae(image).sample (encode -> quantize -> decode): (1, 3, 8, 8)")
        dec_idx = torch.randint(0, 16, (2, 4, 4), generator=g)
        z = vq.quantize.get_codebook_entry(dec_idx, (2, 4, 4, 4))
        ts.add("vqvae.decode.indices", dec_idx, "token grid (2, 4, 4) int64")
        ts.add("vqvae.decode.z", z, "quantize.get_codebook_entry(indices, (2, 4, 4, 4)): (2, 4, 4, 4) NCHW")
        ts.add("vqvae.decode.sample", vq.decode(z, force_not_quantize=True).sample, "vqvae.decode(z, force_not_quantize=True).sample: (2, 3, 8, 8)")

        # --- full pipeline
        runs["pipeline"] = run_pipeline(pipe, ts, "pipeline", PIPELINE_PROMPTS, 3.0, 0.9, seed + 60)
        if learnable:
            runs["pipeline_nocfg"] = run_pipeline(pipe, ts, "pipeline_nocfg", PIPELINE_PROMPTS, 1.0, 1.0, seed + 61)

    extra = {
        "prompts": PIPELINE_PROMPTS,
        "runs": runs,
        "learnable": learnable,
        "text_hidden_size": TEXT_HIDDEN,
        "notes": "C = text hidden size (8). B = 2 prompts. Transformer log-prob layout (batch, classes, pixels). "
        "Pixels row-major over the 4x4 latent grid.",
    }
    ts.save(pdir / "reference_outputs.safetensors", pdir / "reference_outputs.json", extra)
    return sorted(ts.tensors)


def build_pipeline(name, learnable, seed, share_vqvae_from=None):
    pdir = FIX / name
    pdir.mkdir(parents=True, exist_ok=True)
    transformer = build_transformer(seed)
    transformer.save_pretrained(str(pdir / "transformer"), safe_serialization=True)
    if share_vqvae_from is None:
        vqvae = build_vqvae(seed + 10)
        vqvae.save_pretrained(str(pdir / "vqvae"), safe_serialization=True)
    else:
        write_text(pdir / "vqvae" / "SHARED", f"../../{share_vqvae_from}/vqvae\n")
    sched = VQDiffusionScheduler(num_vec_classes=17, num_train_timesteps=10)
    sched.save_pretrained(str(pdir / "scheduler"))
    if learnable:
        torch.manual_seed(seed + 20)
        emb = LearnedClassifierFreeSamplingEmbeddings(learnable=True, hidden_size=TEXT_HIDDEN, length=77)
        with torch.no_grad():
            emb.embeddings.copy_(0.35 * torch.randn(77, TEXT_HIDDEN, generator=torch.Generator().manual_seed(seed + 21)))
    else:
        emb = LearnedClassifierFreeSamplingEmbeddings(learnable=False)
    emb.save_pretrained(str(pdir / "learned_classifier_free_sampling_embeddings"), safe_serialization=True)
    # tokenizer / text encoder: pointers to the shared copies
    special = json.loads((FIX / "tokenizer" / "special_tokens_map.json").read_text())
    write_json(pdir / "tokenizer" / "special_tokens_map.json", special)
    shutil.copyfile(FIX / "tokenizer" / "tokenizer_config.json", pdir / "tokenizer" / "tokenizer_config.json")
    write_text(pdir / "tokenizer" / "SHARED_VOCAB", "../../tokenizer\n")
    write_text(pdir / "text_encoder" / "SHARED", "../../text_encoder\n")

    # model_index.json exactly as diffusers writes it (save_config of the assembled pipeline)
    pipe = load_pipeline(pdir)
    pipe.save_config(str(pdir))
    mi = json.loads((pdir / "model_index.json").read_text())

    if learnable:
        hub = dict(mi)
        hub["learned_classifier_free_sampling_embeddings"] = ["vq_diffusion", "LearnedClassifierFreeSamplingEmbeddings"]
        write_json(pdir / "model_index.hub.json", hub)
        # VQ-VAE weights with the legacy attention names (diffusers writes to_q/to_k/to_v/to_out.0)
        sd = load_file(str(pdir / "vqvae" / "diffusion_pytorch_model.safetensors"))
        assert any(".to_q." in k for k in sd), "diffusers no longer writes to_q names?"
        legacy = legacy_vq_state(sd)
        save_file(legacy, str(pdir / "vqvae_legacy_keys.safetensors"), metadata={"format": "pt"})
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copyfile(pdir / "vqvae" / "config.json", Path(tmp) / "config.json")
            save_file(legacy, str(Path(tmp) / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
            re = VQModel.from_pretrained(tmp)
            for k, v in re.state_dict().items():
                assert torch.equal(v, sd[k]), k
        # a PyTorch .bin copy of the transformer
        bdir = pdir / "bin_variant" / "transformer"
        bdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pdir / "transformer" / "config.json", bdir / "config.json")
        tsd = load_file(str(pdir / "transformer" / "diffusion_pytorch_model.safetensors"))
        torch.save({k: tsd[k] for k in sorted(tsd)}, str(bdir / "diffusion_pytorch_model.bin"))
        fix_torch_save_serialization_id(bdir / "diffusion_pytorch_model.bin")
        rb = Transformer2DModel.from_pretrained(str(bdir), use_safetensors=False)
        for k, v in rb.state_dict().items():
            assert torch.equal(v, tsd[k]), k
    return reference_outputs(pdir, learnable, seed)


# ----------------------------------------------------------------------------------------------


def main():
    FIX.mkdir(exist_ok=True)
    for p in FIX.iterdir():
        if p.name == "README.md":
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()

    build_tokenizer()
    tok = CLIPTokenizer.from_pretrained(str(FIX / "tokenizer"))
    assert tok.pad_token == "!" and tok.pad_token_id == 0 and tok.model_max_length == 77
    assert tok(TEDDY).input_ids == TEDDY_IDS
    tokenizer_cases(tok)
    # what transformers 5 itself writes for a tokenizer (informational, not stored)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        tok_save_layout = sorted(os.listdir(tmp))

    sched_names = scheduler_fixtures()
    build_text_encoder()
    names = {
        "pipeline_learnable": build_pipeline("pipeline_learnable", True, 100),
        "pipeline_empty": build_pipeline("pipeline_empty", False, 200, share_vqvae_from="pipeline_learnable"),
    }

    import make_original_fixtures  # the original-layout checkpoints, made from the pipelines above

    make_original_fixtures.main()

    versions = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "open_clip_torch": open_clip.__version__,
    }
    files = {}
    for p in sorted(FIX.rglob("*")):
        if p.is_file() and not (p.parent == FIX and p.name in ("index.json", "README.md")):
            rel = p.relative_to(FIX).as_posix()
            files[rel] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
    write_json(
        FIX / "index.json",
        {
            "generator": "reference/make_fixtures.py",
            "versions": versions,
            "transformers_tokenizer_save_pretrained_writes": tok_save_layout,
            "files": files,
            "total_bytes": sum(f["size"] for f in files.values()),
        },
    )
    print("scheduler tensors:", json.dumps(sched_names, indent=1))
    print("reference tensors:", json.dumps(names, indent=1))
    print("files:", len(files), "bytes:", sum(f["size"] for f in files.values()))
    print("tokenizer save_pretrained layout:", tok_save_layout)
    print(versions)


if __name__ == "__main__":
    main()
