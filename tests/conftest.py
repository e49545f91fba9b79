import os

import torch

# Two cores: keep intra-op threads from oversubscribing when pytest-xdist or DDP workers run.
torch.set_num_threads(min(2, os.cpu_count() or 1))
