"""Times diffusers' VQDiffusionScheduler on the same inputs as benches/posterior.rs
(K = 4097 incl. mask, N = 1024, batch 2, t = 50): q_posterior, a full `step` (posterior +
Gumbel sampling), and the pipeline's `truncate` at r = 0.86. Prints one line per operation in
the same units as the Rust bench. Run through benches/compare_posterior.sh."""
import sys
import time

import torch
from diffusers import VQDiffusionScheduler
from diffusers.pipelines.deprecated.vq_diffusion.pipeline_vq_diffusion import VQDiffusionPipeline

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
sched = VQDiffusionScheduler(num_vec_classes=4097, num_train_timesteps=100)
log_p = torch.log_softmax(torch.randn(2, 4096, 1024) * 3.0, dim=1)
x_t = torch.tensor([[4096 if i % 2 == 0 else (i * 37) % 4096 for i in range(b * 1024, (b + 1) * 1024)] for b in range(2)])
t = torch.tensor(50)
gen = torch.Generator().manual_seed(1)


def timed(name, fn, repeats=20):
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    print(f"diffusers/{name:<28} median {1e3 * samples[len(samples) // 2]:8.2f} ms   min {1e3 * samples[0]:8.2f} ms")


with torch.no_grad():
    timed("q_posterior", lambda: sched.q_posterior(log_p, x_t, t))
    timed("posterior_and_gumbel_step", lambda: sched.step(log_p, t, x_t, generator=gen))
    timed("truncate_top_r_0.86", lambda: VQDiffusionPipeline.truncate(None, log_p, 0.86))
