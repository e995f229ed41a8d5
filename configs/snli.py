"""SNLI sentences (textvae/data/builders/snli.py) at Li et al. 2019's setting:
LSTM, embeddings 128, hidden 512 (encoder and decoder), latent 32.

Source (bohanli/vae-pretraining-encoder, config/config_snli.py): `'nz': 32,
'ni': 128, 'enc_nh': 512, 'dec_nh': 512, 'dec_dropout_in': 0.5,
'dec_dropout_out': 0.5, 'batch_size': 32, 'epochs': 100, "label": False`;
text_anneal_fb.py: SGD (`--lr` default 1.0), `clip_grad = 5.0`,
`decay_epoch = 5`, `lr_decay = 0.5`, `max_decay = 5`, halving only from epoch
15. Everything else, and where this config differs from the authors' code:
configs/corpora.py.

max_length 100 is a bound, not the authors' (they do not truncate): a longer
sentence is truncated with a warning.

  python -m textvae.main --config=configs/snli.py:vae \\
      --config.data.source_dir=PATH/datasets/snli_data --workdir=runs/snli/vae

Variants: lm, vae, aggressive, pretrain_fb (configs/corpora.py).
"""

from configs import corpora


def get_config(variant: str = "vae"):
  return corpora.lstm_config(variant, data_name="snli", train_lines=100_000, embed_dim=128,
                             hidden_dim=512, max_length=100, decay_patience=5)
