"""Times diffusers' VQModel decode of one 32x32 token grid at the ITHQ size (random weights),
the same work as examples/decode_time.rs: get_codebook_entry -> post_quant_conv -> decoder.
Run through benches/compare_decode.sh. Usage: decode_reference.py [threads] [repeats]."""
import sys
import time

import torch
from diffusers import VQModel

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(threads)
torch.manual_seed(0)
model = VQModel(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
    up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3,
    block_out_channels=(64, 128, 256, 512),
    layers_per_block=2,
    latent_channels=256,
    num_vq_embeddings=4096,
    vq_embed_dim=128,
).eval()
ids = torch.tensor([(i * 2654435761) % (2**32) % 4096 for i in range(1024)])


def decode():
    quant = model.quantize.get_codebook_entry(ids, (1, 32, 32, 128))
    image = model.decode(quant, force_not_quantize=True).sample
    assert image.shape == (1, 3, 256, 256)


with torch.no_grad():
    decode()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode()
        times.append(time.perf_counter() - start)
times.sort()
print(
    f"diffusers/decode_32x32_to_256x256     median {1e3 * times[len(times) // 2]:8.1f} ms   "
    f"min {1e3 * times[0]:8.1f} ms   ({repeats} runs, {threads} threads, torch {torch.__version__})"
)
