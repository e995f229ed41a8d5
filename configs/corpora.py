"""The papers' LSTM VAE setting on the literature's corpora: the one function
behind configs/yahoo.py, yelp.py, short_yelp.py and snli.py, which give the
sizes and cite their sources.

Common to all four (He et al. 2019, jxhe/vae-lagging-encoder text.py; Li et al.
2019, bohanli/vae-pretraining-encoder text_anneal_fb.py; the mechanism of
configs/ptb_lstm.py):
  - LSTM encoder and decoder, latent 32, every weight U(-0.01, 0.01) and the
    embeddings U(-0.1, 0.1) (`uniform_initializer(0.01)`, `(0.1)`);
  - dropout 0.5 on the decoder's input embeddings and on its output states
    (`dec_dropout_in` / `dec_dropout_out` 0.5), none in the encoder;
  - batch 32, at most 100 epochs (`batch_size`, `epochs` of each config file);
  - plain SGD with learning rate 1.0, gradient-norm clipping 5 (`clip_grad`);
  - the learning rate halved after `decay_patience` validations without
    improvement, only from epoch 15 on, the best model reloaded at each halving,
    training stopped after the 5th (`lr_decay = 0.5`, `max_decay = 5`); the LM
    halves after 2, as in configs/ptb_lstm.py;
  - the KL weight warmed up linearly over the first 10 epochs (`--warm_up 10`).
Where this differs from the authors' code (as configs/ptb_lstm.py): model
selection and the plateau test use the validation IW-NLL (K = 5), not the ELBO
loss; optax's plateau test uses a relative tolerance of 1e-4; the decoder's
softmax has a bias; the KL weight starts at 0 (He et al.'s README uses
`--kl_start 0.1`); encoder and decoder share one hidden size (the authors'
configs give both the same `enc_nh` / `dec_nh`, and their scripts set
`args.enc_nh = args.dec_nh`).

One epoch is `train_lines // 32` steps. The configs assume 100,000 training
lines per corpus (the size of Yang et al. 2017's Yahoo and Yelp training
splits; not counted here for any corpus, short Yelp and SNLI included: the
files are not on the machine these configs were written on). For a copy of
another size, scale eval_every_steps and the epoch counts to it.

Variants (`--config=configs/NAME.py:VARIANT`): lm (the decoder alone), vae,
aggressive (He et al. 2019's aggressive encoder training, as configs/ptb.py),
pretrain_fb (Li et al. 2019: 10 autoencoder epochs, decoder reset, free bits
8 over 32 dimensions, as configs/ptb.py).
"""

from configs import default

BATCH = 32
MAX_EPOCHS = 100
VARIANTS = ("lm", "vae", "aggressive", "pretrain_fb")


def lstm_config(variant: str, *, data_name: str, train_lines: int, embed_dim: int,
                hidden_dim: int, max_length: int, decay_patience: int, latent_dim: int = 32):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r} for data.name={data_name!r}: "
                     f"{', '.join(VARIANTS)}")
  epoch = train_lines // BATCH
  config = default.get_config()
  config.data.name = data_name
  config.data.max_length = max_length
  m = config.model
  m.cell = "lstm"
  m.embed_dim, m.hidden_dim, m.latent_dim = embed_dim, hidden_dim, latent_dim
  m.param_init, m.init_scale, m.embed_init_scale = "uniform", 0.01, 0.1
  m.embed_dropout = m.output_dropout = 0.5
  t = config.train
  t.batch_size = BATCH
  t.eval_batch_size = 128
  t.num_steps = MAX_EPOCHS * epoch
  t.log_every_steps = 100
  t.eval_every_steps = t.checkpoint_every_steps = epoch
  t.keep_checkpoints = 2
  t.optimizer, t.learning_rate, t.grad_clip = "sgd", 1.0, 5.0
  t.early_stopping.metric = "iw_nll"
  t.early_stopping.patience = 0  # the schedule stops training
  t.kl_schedule.name = "linear"
  t.kl_schedule.warmup_steps = 10 * epoch
  s = t.lr_schedule
  s.name, s.factor, s.max_decays, s.restore_best = "plateau", 0.5, 5, True
  s.patience, s.start_step = decay_patience, 15 * epoch
  if variant == "lm":
    m.kind, m.latent_dim = "lm", 0
    s.patience, s.start_step = 2, 0
  elif variant == "aggressive":
    t.aggressive.enabled = True
  elif variant == "pretrain_fb":
    t.pretrain_steps = 10 * epoch
    t.early_stopping.min_step = t.pretrain_steps + 1  # VAE phase only
    t.free_bits.kind, t.free_bits.target = "per_dim", 8.0
    s.start_step = t.pretrain_steps + 15 * epoch
  return config
