"""Penn Treebank sentence VAE at the common 256/256/32 configuration, and the
posterior-collapse remedies as named variants over one training loop.

Every variant: GRU encoder and decoder, 256-d embeddings and hidden states,
32-d latent (the LM has none), batch 32, Adam 1e-3 (b1 0.9, b2 0.999), global
gradient-norm clipping 5, evaluation on the validation split every epoch.
Command (the data folder holds ptb.{train,valid,test}.txt; leave source_dir out
to download the standard files):

  python -m textvae.main --config=configs/ptb.py:NAME \\
      --config.data.source_dir=../shared/data/ptb --workdir=runs/ptb/NAME

then the test-split numbers of the results table (IW-NLL with K=500; writes
runs/ptb/NAME/eval_test.json), their copy into results/ptb/NAME/ with the run's
config.json and a summary of its training log, and the table:

  python -m textvae.evaluate --workdir=runs/ptb/NAME --split=test --num_importance_samples=500
  python tools/make_ptb_table.py --collect NAME=runs/ptb/NAME
  python tools/make_ptb_table.py
One epoch is 1,314 steps of 32 sentences (929,589 tokens with </s>).

Deviation common to all rows: the papers below train with SGD (lr 1.0, or 0.5
for Li et al.'s VAE phase) and halve the learning rate when validation loss
stalls, for up to 100 epochs; this codebase uses Adam 1e-3 for every row, so
that the rows differ only in the remedy. Every row validates once per epoch
(IW-NLL with K=5) and is evaluated on test at its best validation checkpoint
(workdir/best); training stops after 3 epochs without improvement or at the
epochs given below (pretrain_fb: only VAE-phase validations count).

Variants (`--config=configs/ptb.py:NAME`):
  lm           The decoder without z: the RNNLM baseline (KL = 0; its NLL is exact).
  vae          Plain VAE, KL weight warmed up linearly 0 -> 1 over the first 10
               epochs (He et al. 2019's text setting), 30 epochs.
  bowman       Bowman et al. 2016 (CoNLL), "Generating sentences from a continuous
               space": logistic KL annealing beta = 1 / (1 + exp(-k (step - x0)))
               with k = 0.0025, x0 = 2500 (the values of the widely used PyTorch
               re-implementation timbmg/Sentence-VAE; the paper gives the sigmoid
               form, not its constants) and word dropout 0.25 on the decoder
               inputs (keep rate 0.75, one of the paper's settings), 30 epochs.
  cyclical     Fu et al. 2019 (NAACL), "Cyclical annealing schedule": M = 4 cycles
               over the run, R = 0.5 of each cycle increasing beta linearly 0 -> 1,
               then beta = 1 for the rest of the cycle; 30 epochs (7.5 per cycle).
  freebits     Per-dimension free bits (Kingma et al. 2016; Li et al. 2019's
               "FB" baseline): target 8 nats over 32 dims (lambda = 0.25 per
               dimension on the batch-mean KL of each dimension) with the linear
               10-epoch warm-up of `vae`; 30 epochs.
  pretrain_fb  Li et al. 2019 (EMNLP), "A surprisingly effective fix": an
               autoencoder (beta = 0) for 10 epochs, then the decoder is
               re-initialised and a VAE is trained from the pretrained encoder with
               free bits (target 8 over 32 dims, per dimension: the authors'
               `--target_kl 8 --fb 2`, bohanli/vae-pretraining-encoder README) and
               beta warmed up linearly from 0 over 10 epochs (`--kl_start 0
               --warm_up 10`); 30 VAE epochs (40 in all). The authors apply the
               threshold per sentence and dimension (text_anneal_fb.py, fb=2);
               here it applies to the batch mean of each dimension, as Kingma et al.
               (`--config.train.free_bits.kind=per_sentence_dim` is the authors' form).
  aggressive   He et al. 2019 (ICLR), "Lagging inference networks": before every
               decoder update, encoder-only updates on fresh batches until the loss
               per token over a window of 10 inner steps stops decreasing (at most
               100; jxhe/vae-lagging-encoder text.py uses windows of 10 and
               `sub_iter < 100`), switched off at the first epoch whose validation
               MI does not increase; linear 10-epoch warm-up as `vae`; 30 epochs.
  bnvae        Zhu et al. 2020 (ACL), "A batch normalized inference network keeps
               the KL vanishing away": batch normalisation of the posterior mean
               with fixed scale gamma = 0.6 and a learned shift (the paper reports
               gamma in {0.3, ..., 1.0}, mostly 0.6-0.7, for its text data sets;
               0.6 here), linear 10-epoch warm-up as `vae`; 30 epochs. Its expected
               KL per sentence is at least 0.5 * 32 * 0.36 = 5.76 nats.
  bnvae_const  BN-VAE as `bnvae` with the KL weight at 1 from the first step: the
               BN bound keeps the KL above 5.76 nats without annealing (Zhu et
               al.'s argument), and without a 10-epoch warm-up the run is
               selected where the decoder fits best, not after it overfits.
  svae         The speed benchmark's common config: embeddings 300, hidden 256,
               latent 16 (see benchmarks/).

Measured runtime on a 2-core x86_64 CPU (results/ptb.md): `lm` early-stopped
after 8 epochs in 42 minutes on one core; `bnvae` after 12 epochs in 73 minutes
(5 epochs on one core, 7 on both); IW-NLL(500) on the test split takes about 30
minutes of both cores for a VAE, seconds for the LM (exact). Variants that keep
improving run longer, up to their epoch limit; aggressive training costs several
times more while it is on.
"""


from configs import default

EPOCH = 42068 // 32  # 1314 steps
VARIANTS = ("lm", "vae", "bowman", "cyclical", "freebits", "pretrain_fb", "aggressive",
            "bnvae", "bnvae_const", "svae")


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
  config.train.checkpoint_every_steps = EPOCH
  # Model selection as in the papers: the test row is the checkpoint with the best
  # validation IW-NLL (workdir/best), and training stops after 3 epochs without
  # a better one (the papers halve the SGD learning rate on such plateaus instead,
  # and stop after a few halvings).
  config.train.early_stopping.metric = "iw_nll"
  config.train.early_stopping.patience = 3
  config.train.kl_schedule.name = "linear"
  config.train.kl_schedule.warmup_steps = 10 * EPOCH
  if variant == "vae":
    pass
  elif variant == "lm":
    config.model.kind = "lm"
    config.model.latent_dim = 0
  elif variant == "bowman":
    config.train.kl_schedule.name = "logistic"
    config.train.kl_schedule.logistic_k = 0.0025
    config.train.kl_schedule.logistic_x0 = 2500
    config.model.word_dropout = 0.25
  elif variant == "cyclical":
    config.train.kl_schedule.name = "cyclical"
    config.train.kl_schedule.num_cycles = 4
    config.train.kl_schedule.ratio = 0.5
    config.train.kl_schedule.cycle_steps = config.train.num_steps // 4
  elif variant == "freebits":
    config.train.free_bits.kind = "per_dim"
    config.train.free_bits.target = 8.0
  elif variant == "pretrain_fb":
    config.train.pretrain_steps = 10 * EPOCH
    config.train.num_steps = 40 * EPOCH
    config.train.early_stopping.min_step = config.train.pretrain_steps + 1  # VAE phase only
    config.train.free_bits.kind = "per_dim"
    config.train.free_bits.target = 8.0
  elif variant == "aggressive":
    config.train.aggressive.enabled = True
  elif variant == "bnvae":
    config.model.bn_gamma = 0.6
  elif variant == "bnvae_const":
    config.model.bn_gamma = 0.6
    config.train.kl_schedule.name = "constant"
  elif variant == "svae":
    config.model.embed_dim = 300
    config.model.latent_dim = 16
  else:
    raise ValueError(f"unknown configs/ptb.py variant {variant!r}: {', '.join(VARIANTS)}")
  return config
