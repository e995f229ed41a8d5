"""Quickstart: a small sentence VAE on the built-in `synthetic` corpus.

Runs anywhere (the corpus is generated in code) and visibly learns: the
validation ELBO rises and the KL stays well above zero because the sentences are
generated from discrete factors that z can carry.

  python -m textvae.main --config=configs/default.py --workdir=/tmp/textvae_quickstart

Measured on a 2-core CPU (see README): about 2-3 minutes including compilation.
Every other config imports this one and overrides what differs.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "synthetic"          # synthetic | ptb | text_files | yahoo | yelp |
                                          # short_yelp | snli | yelp_sentiment
  config.data.source_dir = ""             # ptb: local copy; text_files: {train,valid,test}.txt
  config.data.tfds_data_dir = ""          # where TFDS prepares datasets ('' = ~/tensorflow_datasets)
  config.data.encoding_errors = "strict"  # text_files: 'strict' (error naming file:line) | 'replace'
  config.data.label_column = -1           # text_files, yahoo: 0 = label<TAB>sentence lines
                                          # (1 = sentence<TAB>label); -1 = no label
  config.data.max_length = 64             # tokens per sentence incl. </s>; longer ones are truncated
  config.data.vocab_size = 0              # 0 = every training word; else the most frequent
  config.data.min_count = 1
  config.data.pad_multiple = 1            # pad each batch to its longest sentence, rounded up
  config.data.pool_batches = 50           # length-sorting pool, in batches
  # Batches are padded up to one of at most max_buckets lengths chosen from the
  # training lengths (textvae/data/pipeline.py): each is one compiled program.
  # 96 keeps every length of PTB (81 distinct in train, plus max_length 100) its
  # own bucket, so PTB batches are padded exactly as before buckets existed and
  # its runs resume bitwise.
  config.data.max_buckets = 96
  config.data.synthetic_seed = 0
  config.data.synthetic_num_train = 10000
  config.data.synthetic_num_valid = 1000  # smaller held-out splits: quicker validations
  config.data.synthetic_num_test = 1000

  config.model = ml_collections.ConfigDict()
  config.model.kind = "vae"               # vae | lm
  config.model.embed_dim = 64
  config.model.hidden_dim = 128
  config.model.latent_dim = 16
  config.model.cell = "gru"               # gru | lstm (textvae/cells)
  config.model.param_init = "default"     # default (Flax's) | uniform: U(-init_scale, init_scale)
  config.model.init_scale = 0.01          # uniform: every weight but the embeddings
  config.model.embed_init_scale = 0.1     # uniform: the embeddings
  config.model.word_dropout = 0.0         # decoder inputs replaced by <unk> (Bowman et al.)
  config.model.embed_dropout = 0.0        # dropout of the decoder's input embeddings
  config.model.output_dropout = 0.0       # dropout of the decoder's states before the softmax
  config.model.encoder_embed_dropout = 0.0  # dropout of the encoder's embeddings
  # Conditional VAE (textvae/conditioning.py): a label feature of the corpus
  # ('' = unconditional), e.g. 'sentiment' on synthetic or 'label' on a labelled
  # corpus; q(z|x, y), p(x|z, y) with a label embedding of label_dim, and p(z|y).
  config.model.condition = ""
  config.model.condition_prior = "standard"  # standard: N(0, I) | learned: a Gaussian per label
  config.model.label_dim = 16

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 32            # global, split evenly over all devices
  config.train.eval_batch_size = 64
  config.train.eval_importance_samples = 5  # small K for the validation curves (IW-NLL, MI, AU)
  config.train.num_steps = 1200
  config.train.optimizer = "adam"         # adam | sgd (textvae/optim.py)
  config.train.learning_rate = 1e-3
  config.train.grad_clip = 5.0            # global gradient norm; <= 0: no clipping
  config.train.adam_b1 = 0.9
  config.train.adam_b2 = 0.999
  config.train.log_every_steps = 50
  config.train.eval_every_steps = 300
  config.train.checkpoint_every_steps = 300
  config.train.keep_checkpoints = 3
  config.train.num_samples = 8

  # Model selection on validation data (textvae/early_stopping.py): every
  # improvement of `metric` is saved to workdir/best, which evaluation uses; with
  # patience > 0 training stops after that many validations without one.
  # Learning-rate schedule on validation plateaus (optax.contrib.reduce_on_plateau
  # fed with the early-stopping metric at every validation from start_step on):
  # multiply by `factor` after `patience` validations without improvement (relative
  # tolerance rtol); training stops after the `max_decays`-th reduction (0 = never).
  # restore_best: each reduction restarts from the best validation checkpoint
  # (workdir/best), as the papers' code does.
  config.train.lr_schedule = ml_collections.ConfigDict()
  config.train.lr_schedule.name = "constant"  # constant | plateau
  config.train.lr_schedule.factor = 0.5
  config.train.lr_schedule.patience = 2
  config.train.lr_schedule.rtol = 1e-4
  config.train.lr_schedule.max_decays = 5
  config.train.lr_schedule.start_step = 0
  config.train.lr_schedule.restore_best = True

  config.train.early_stopping = ml_collections.ConfigDict()
  config.train.early_stopping.metric = "iw_nll"   # iw_nll | ppl | recon (lower) | elbo
  config.train.early_stopping.patience = 0        # 0 = train for num_steps
  config.train.early_stopping.min_step = 0        # validations before it are ignored

  config.train.kl_schedule = ml_collections.ConfigDict()
  config.train.kl_schedule.name = "linear"  # constant | linear | logistic | cyclical
  config.train.kl_schedule.max_weight = 1.0
  config.train.kl_schedule.warmup_steps = 600
  config.train.kl_schedule.logistic_k = 0.0025
  config.train.kl_schedule.logistic_x0 = 2500
  config.train.kl_schedule.num_cycles = 4
  config.train.kl_schedule.cycle_steps = 1000
  config.train.kl_schedule.ratio = 0.5

  # Posterior-collapse remedies, all off here (variants in configs/ptb.py; see
  # textvae/objectives.py and steps.py).
  config.model.bn_gamma = 0.0             # BN-VAE fixed scale on the posterior mean (0 = off)
  config.train.pretrain_steps = 0         # autoencoder steps before the VAE (decoder reset)
  # Modules copied from another, finished run before step 1 (textvae/hooks/init_from.py):
  config.train.init_from = ml_collections.ConfigDict()
  config.train.init_from.workdir = ""     # '' = off
  config.train.init_from.modules = ("encoder",)
  config.train.init_from.checkpoint = "best"  # best | latest
  config.train.free_bits = ml_collections.ConfigDict()
  config.train.free_bits.kind = "none"    # none | per_dim | per_sentence_dim | batch
  config.train.free_bits.target = 0.0     # total free nats (per_dim: target / latent_dim each)
  config.train.aggressive = ml_collections.ConfigDict()
  config.train.aggressive.enabled = False
  config.train.aggressive.window = 10     # inner steps per loss comparison
  config.train.aggressive.max_inner_steps = 100
  return config
