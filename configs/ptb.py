"""Penn Treebank sentence VAE at the common 256/256/32 configuration.

Variants (`--config=configs/ptb.py:NAME`):
  vae (default)  GRU VAE, 256-d embeddings and hidden state, 32-d latent, batch 32,
                 Adam 1e-3, gradient clipping 5, KL weight warmed up linearly from
                 0 to 1 over the first 10 epochs (He et al. 2019 setting), 30 epochs.
  lm             the same decoder without z: the RNNLM baseline.
  svae           the speed benchmark's common config: embeddings 300, hidden 256,
                 latent 16 (issue #7; see benchmarks/).

Command (the data folder holds ptb.{train,valid,test}.txt; leave source_dir out
to download the standard files):
  python -m textvae.main --config=configs/ptb.py \
      --config.data.source_dir=../shared/data/ptb --workdir=/tmp/ptb_vae

One epoch is 1,314 steps of 32 sentences (929,589 tokens with </s>). Expected
runtime on a 2-core CPU: see README.md ("Training on Penn Treebank") for the
measured tokens/s; 30 epochs take several hours there.
"""

from configs import default

EPOCH = 42068 // 32  # 1314 steps


def get_config(variant: str = "vae"):
  config = default.get_config()
  config.data.name = "ptb"
  config.data.max_length = 100  # longer than any PTB sentence (82 + </s>): nothing truncated
  config.model.embed_dim = 256
  config.model.hidden_dim = 256
  config.model.latent_dim = 32
  config.train.batch_size = 32
  config.train.eval_batch_size = 128
  config.train.num_steps = 30 * EPOCH
  config.train.log_every_steps = 100
  config.train.eval_every_steps = EPOCH
  config.train.checkpoint_every_steps = 500
  config.train.kl_schedule.name = "linear"
  config.train.kl_schedule.warmup_steps = 10 * EPOCH
  if variant == "vae":
    pass
  elif variant == "lm":
    config.model.kind = "lm"
    config.model.latent_dim = 0
  elif variant == "svae":
    config.model.embed_dim = 300
    config.model.latent_dim = 16
  else:
    raise ValueError(f"unknown configs/ptb.py variant {variant!r}: vae, lm, svae")
  return config
