"""configs/ptb_lstm.py holds the authors' setting (bohanli/vae-pretraining-encoder
d59f91c: config_ptb.py, text_beta.py, text_anneal_fb.py, lm.py; the values below
are copied from those files, not from the config), and its variants differ from
one another only where their docstrings say."""

import json

from configs import ptb_lstm
from textvae import workdir

EPOCH = 42068 // 32  # PTB train sentences / batch 32


def _flat(config):
  return workdir.flatten(json.loads(config.to_json()))


def test_the_authors_setting():
  for variant in ptb_lstm.VARIANTS:
    c = ptb_lstm.get_config(variant)
    assert (c.model.cell, c.model.embed_dim, c.model.hidden_dim) == ("lstm", 256, 256)
    assert c.model.latent_dim == (0 if variant == "lm" else 32)
    assert (c.model.embed_dropout, c.model.output_dropout) == (0.5, 0.5)  # dec_dropout_in/out
    assert (c.model.init_scale, c.model.embed_init_scale) == (0.01, 0.1)
    assert (c.train.optimizer, c.train.learning_rate, c.train.grad_clip) == ("sgd", 1.0, 5.0)
    assert c.train.batch_size == 32
    s = c.train.lr_schedule
    assert (s.name, s.factor, s.max_decays, s.restore_best) == ("plateau", 0.5, 5, True)
    assert s.patience == (2 if variant == "lm" else 5)  # lm.py / text_anneal_fb.py decay_epoch
    assert c.train.num_steps == 100 * EPOCH


def test_pretrain_fb_sent_is_pretrain_fb_with_the_authors_free_bits():
  a = _flat(ptb_lstm.get_config("pretrain_fb"))
  b = _flat(ptb_lstm.get_config("pretrain_fb_sent"))
  assert {k: (a[k], b[k]) for k in a if a[k] != b[k]} == {
      "train.free_bits.kind": ("per_dim", "per_sentence_dim")}
  assert b["train.free_bits.target"] == 8.0  # --target_kl 8
  assert b["train.pretrain_steps"] == 10 * EPOCH
  assert b["train.lr_schedule.start_step"] == 25 * EPOCH  # 15 VAE epochs (load_best_epoch)


def test_the_two_run_procedure_ae_then_pretrain_fb_ae():
  vae, ae = _flat(ptb_lstm.get_config("vae")), _flat(ptb_lstm.get_config("ae"))
  assert {k: (vae[k], ae[k]) for k in vae if vae[k] != ae[k]} == {  # text_beta.py --beta 0
      "train.kl_schedule.name": ("linear", "constant"),
      "train.kl_schedule.max_weight": (1.0, 0.0),
      "train.early_stopping.metric": ("iw_nll", "recon")}  # its loss is the reconstruction
  assert ae["train.lr_schedule.start_step"] == 15 * EPOCH  # load_best_epoch 15
  fb, fb_ae = _flat(ptb_lstm.get_config("pretrain_fb")), _flat(
      ptb_lstm.get_config("pretrain_fb_ae"))
  # The same free bits as pretrain_fb (per_dim, the better of the two forms measured
  # here), so the two rows differ only in how the encoder was pretrained.
  assert {k: (fb[k], fb_ae[k]) for k in fb if fb[k] != fb_ae[k]} == {
      "train.pretrain_steps": (10 * EPOCH, 0),  # the autoencoder is the other run
      "train.early_stopping.min_step": (10 * EPOCH + 1, 0),
      "train.lr_schedule.start_step": (25 * EPOCH, 15 * EPOCH),
      "train.init_from.workdir": ("", "runs/ptb_lstm/ae")}
  assert fb_ae["train.init_from.modules"] == ["encoder"]  # --reset_dec: a fresh decoder
  assert fb_ae["train.init_from.checkpoint"] == "best"  # text_beta.py saves its best model
  assert fb_ae["train.kl_schedule.warmup_steps"] == 10 * EPOCH  # --kl_start 0 --warm_up 10


def test_aggressive_is_vae_with_the_inner_loop_and_more_checkpoints():
  a = _flat(ptb_lstm.get_config("vae"))
  b = _flat(ptb_lstm.get_config("aggressive"))
  assert {k: (a[k], b[k]) for k in a if a[k] != b[k]} == {
      "train.aggressive.enabled": (False, True),
      "train.checkpoint_every_steps": (EPOCH, EPOCH // 18)}
  assert (b["train.aggressive.window"], b["train.aggressive.max_inner_steps"]) == (10, 100)
  assert EPOCH % b["train.checkpoint_every_steps"] == 0  # every validation step is saved too
