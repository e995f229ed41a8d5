"""Yahoo Answers (Yang et al. 2017's split, textvae/data/builders/yahoo.py) at
He et al. 2019's setting: LSTM, embeddings 512, hidden 1024 (encoder and
decoder), latent 32.

Source (jxhe/vae-lagging-encoder, config/config_yahoo.py): `'nz': 32, 'ni': 512,
'enc_nh': 1024, 'dec_nh': 1024, 'dec_dropout_in': 0.5, 'dec_dropout_out': 0.5,
'batch_size': 32, 'epochs': 100`; text.py: SGD lr 1.0, `clip_grad = 5.0`,
`decay_epoch = 2`, `lr_decay = 0.5`, `max_decay = 5`, halving only from epoch 15
(`epoch >= 15`). Everything else, and where this config differs from the
authors' code: configs/corpora.py.

max_length 201 leaves room for 200 words and </s> (a sample of Yahoo Answers
documents ran from 1 to 200 tokens); a longer line is truncated, with a
warning that counts them. Li et al.'s
copy with topic labels (yahoo_label_data, `label<TAB>document`):
`--config.data.label_column=0` and its folder as source_dir.

  python -m textvae.main --config=configs/yahoo.py:vae \\
      --config.data.source_dir=PATH/datasets/yahoo_data --workdir=runs/yahoo/vae

(leave source_dir out to download He et al.'s archive). Variants: lm, vae,
aggressive, pretrain_fb (configs/corpora.py).
"""

from configs import corpora


def get_config(variant: str = "vae"):
  return corpora.lstm_config(variant, data_name="yahoo", train_lines=100_000, embed_dim=512,
                             hidden_dim=1024, max_length=201, decay_patience=2)
