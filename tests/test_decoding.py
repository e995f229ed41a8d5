"""Decoding strategies, beam search, latent operations and the reconstruction
scores, on small randomly initialised models (no training needed)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from textvae import decoding
from textvae import errors
from textvae import models
from textvae import reconstruction
from textvae.data.vocab import BOS_ID, EOS_ID, PAD_ID

V, L = 12, 10
MIXED = 5.0  # an <eos> bias with which some rows stop early and some run to L


def make(kind="vae", eos_bias=0.0, sharpen=4.0, seed=0):
  """A small model whose logits are spread out (no near-ties), with <eos>'s
  output bias shifted by `eos_bias`."""
  if kind == "vae":
    model = models.TextVAE(vocab_size=V, embed_dim=8, hidden_dim=16, latent_dim=3)
  else:
    model = models.RNNLM(vocab_size=V, embed_dim=8, hidden_dim=16)
  tokens = jnp.ones((1, 4), jnp.int32)
  params = model.init({"params": jax.random.key(seed), "latent": jax.random.key(1)},
                      tokens, tokens)["params"]
  dec = dict(params["decoder"])
  dec["output_kernel"] = dec["output_kernel"] * sharpen
  # <pad> and <bos> are never generated; make the model agree, so that its
  # log-likelihoods are those the decoder searches.
  dec["output_bias"] = (dec["output_bias"].at[EOS_ID].add(eos_bias)
                        .at[PAD_ID].set(-1e9).at[BOS_ID].set(-1e9))
  params = dict(params, decoder=dec)
  if kind == "vae":  # posterior means spread out enough to decode differently
    enc = dict(params["encoder"])
    enc["posterior"] = dict(enc["posterior"], kernel=enc["posterior"]["kernel"] * 20)
    params["encoder"] = enc
  return model, params


def latents(model, b=8, seed=3):
  return jax.random.normal(jax.random.key(seed), (b, decoding.latent_dim(model))) * 2.0


def check_well_formed(tokens, max_length):
  """Words, then at most one </s>, then only <pad>; never <pad>/<bos> inside."""
  tokens = np.asarray(tokens)
  assert tokens.shape[1] == max_length
  for row in tokens:
    eos = np.flatnonzero(row == EOS_ID)
    end = eos[0] + 1 if eos.size else max_length
    assert np.all(row[end:] == PAD_ID)
    assert not np.isin(row[:end], [PAD_ID, BOS_ID]).any()
  return [int(np.flatnonzero(r == EOS_ID)[0]) + 1 if (r == EOS_ID).any() else None
          for r in tokens]


@pytest.mark.parametrize("kind", ["vae", "lm"])
def test_beam_1_top_k_1_and_cold_sampling_equal_greedy(kind):
  model, params = make(kind, eos_bias=MIXED)
  z = latents(model)
  key = jax.random.key(7)
  greedy = np.asarray(decoding.generate(model, params, z, max_length=L))
  lengths = check_well_formed(greedy, L)
  assert len(set(map(tuple, greedy))) > 1 or kind == "lm"  # the rows do depend on z
  assert any(n is not None for n in lengths)
  for length_penalty in (0.0, 1.0):
    beam = decoding.generate(model, params, z, max_length=L, strategy="beam", beam_size=1,
                             length_penalty=length_penalty)
    np.testing.assert_array_equal(beam, greedy)
  top1 = decoding.generate(model, params, z, key, max_length=L, strategy="top_k", top_k=1)
  np.testing.assert_array_equal(top1, greedy)
  cold = decoding.generate(model, params, z, key, max_length=L, strategy="sample",
                           temperature=1e-4)
  np.testing.assert_array_equal(cold, greedy)
  tiny_p = decoding.generate(model, params, z, key, max_length=L, strategy="top_p", top_p=1e-6)
  np.testing.assert_array_equal(tiny_p, greedy)
  # And warm sampling does not (the test can tell them apart).
  warm = decoding.generate(model, params, z, key, max_length=L, strategy="sample",
                           temperature=3.0)
  assert not np.array_equal(warm, greedy)
  # The old entry point is the same decoder.
  np.testing.assert_array_equal(decoding.decode(model, params, z, key, max_length=L), greedy)


@pytest.mark.parametrize("strategy", decoding.STRATEGIES)
def test_stops_at_eos_and_respects_max_length(strategy):
  kw = dict(strategy=strategy, temperature=1.0, top_k=3, top_p=0.8, beam_size=3)
  key = jax.random.key(0)
  # A likely </s>: most rows stop early, and nothing but <pad> follows it.
  model, params = make(eos_bias=MIXED)
  z = latents(model, b=8)
  out = decoding.generate(model, params, z, key, max_length=L, **kw)
  lengths = check_well_formed(out, L)
  assert sum(n is not None and n < L for n in lengths) >= 3, lengths
  # </s> impossible: every row runs to exactly max_length tokens.
  model, params = make(eos_bias=-1e4)
  for max_length in (1, 7):
    out = np.asarray(decoding.generate(model, params, z, key, max_length=max_length, **kw))
    assert out.shape == (8, max_length)
    assert check_well_formed(out, max_length) == [None] * 8
    assert np.all(out != PAD_ID)
  # </s> certain: one token, then padding.
  model, params = make(eos_bias=1e4)
  out = np.asarray(decoding.generate(model, params, z, key, max_length=L, **kw))
  np.testing.assert_array_equal(out[:, 0], EOS_ID)
  np.testing.assert_array_equal(out[:, 1:], PAD_ID)


@pytest.mark.parametrize("strategy", decoding.STRATEGIES)
def test_batched_equals_one_by_one(strategy):
  model, params = make(eos_bias=MIXED)
  z = latents(model, b=8)
  key = jax.random.key(11)
  kw = dict(max_length=L, strategy=strategy, temperature=1.0, top_k=4, top_p=0.9,
            beam_size=3)
  batched = np.asarray(decoding.generate(model, params, z, key, **kw))
  singles = np.concatenate([
      np.asarray(decoding.generate(model, params, z[i:i + 1], key, row_ids=[i], **kw))
      for i in range(8)])
  np.testing.assert_array_equal(batched, singles)


def test_filters_keep_exactly_top_k_and_the_nucleus():
  logits = jnp.log(jnp.asarray([[0.5, 0.2, 0.15, 0.1, 0.05]]))
  kept = lambda out: np.asarray(out[0] > -1e29)
  np.testing.assert_array_equal(kept(decoding.filter_logits(logits, "top_k", 2, 1.0)),
                                [1, 1, 0, 0, 0])
  np.testing.assert_array_equal(kept(decoding.filter_logits(logits, "top_k", 5, 1.0)),
                                [1, 1, 1, 1, 1])
  # Nucleus: 0.5 < 0.6, 0.5 + 0.2 >= 0.6: two tokens; p = 0.85 needs three.
  np.testing.assert_array_equal(kept(decoding.filter_logits(logits, "top_p", 0, 0.6)),
                                [1, 1, 0, 0, 0])
  np.testing.assert_array_equal(kept(decoding.filter_logits(logits, "top_p", 0, 0.86)),
                                [1, 1, 1, 1, 0])
  np.testing.assert_array_equal(kept(decoding.filter_logits(logits, "top_p", 0, 0.3)),
                                [1, 0, 0, 0, 0])


def first_token_probs(model, params, z):
  variables = {"params": params}
  h = model.apply(variables, z, method="decode_init")
  _, logits = model.apply(variables, h, jnp.full((z.shape[0],), BOS_ID), z,
                          method="decode_step")
  logits = logits.at[:, PAD_ID].set(-jnp.inf).at[:, BOS_ID].set(-jnp.inf)
  return np.asarray(jax.nn.softmax(logits, -1))[0]


@pytest.mark.parametrize("strategy,temperature", [("sample", 2.0), ("top_k", 1.0),
                                                  ("top_p", 1.0)])
def test_sampling_frequencies_match_the_distribution(strategy, temperature):
  model, params = make(sharpen=1.0)
  n = 4000
  z = jnp.broadcast_to(latents(model, b=1), (n, 3))
  out = np.asarray(decoding.generate(model, params, z, jax.random.key(5), max_length=1,
                                     strategy=strategy, temperature=temperature,
                                     top_k=3, top_p=0.5))
  freq = np.bincount(out[:, 0], minlength=V) / n
  p = first_token_probs(model, params, z[:1]) ** (1.0 / temperature)
  p /= p.sum()
  order = np.argsort(-p)
  if strategy == "top_k":
    p[order[3:]] = 0
  if strategy == "top_p":
    before = np.cumsum(p[order]) - p[order]
    p[order[before >= 0.5]] = 0
  p /= p.sum()
  assert np.abs(freq - p).max() < 0.03, (freq.round(3), p.round(3))
  assert np.all(freq[p == 0] == 0)


def sequence_logp(model, params, z, rows):
  """log p(row | z) under the model, for token rows cut after </s>."""
  rows = [reconstruction.strip(r) for r in rows]
  tokens = decoding.pad_batch(rows)
  inputs = np.concatenate([np.full((len(rows), 1), BOS_ID), tokens[:, :-1]], 1)
  inputs = np.where(tokens == PAD_ID, PAD_ID, inputs)
  nll = model.apply({"params": params}, jnp.asarray(tokens), jnp.asarray(inputs), z,
                    method="decode_nll")
  return -np.asarray((nll * (tokens != PAD_ID)).sum(1))


def test_beam_search_equals_exhaustive_search():
  """With a beam as wide as the search space, the best hypothesis is the exact
  argmax of log p / length ** alpha over every sequence of up to 3 tokens."""
  model, params = make(eos_bias=1.5, sharpen=1.5)
  z = latents(model, b=3)
  max_length = 3
  words = [t for t in range(V) if t not in (PAD_ID, BOS_ID, EOS_ID)]
  candidates = [[EOS_ID]]
  for n in (1, 2):
    candidates += [list(w) + [EOS_ID] for w in itertools.product(words, repeat=n)]
  candidates += [list(w) for w in itertools.product(words, repeat=3)]  # cut at max_length
  lengths = np.asarray([len(c) for c in candidates], float)
  cand_logp = [sequence_logp(model, params, jnp.broadcast_to(z[b], (len(candidates), 3)),
                             [np.asarray(c) for c in candidates]) for b in range(3)]
  for alpha in (0.0, 1.0):
    seqs, scores, logp = decoding.beam_search(model, params, z, max_length=max_length,
                                              beam_size=64, length_penalty=alpha)
    for b in range(3):
      norm = cand_logp[b] / lengths ** alpha
      best = candidates[int(np.argmax(norm))]
      np.testing.assert_array_equal(reconstruction.strip(seqs[b, 0]), best)
      np.testing.assert_allclose(scores[b, 0], norm.max(), rtol=1e-4)
      # The reported log probabilities are the model's.
      np.testing.assert_allclose(logp[b, :4],
                                 sequence_logp(model, params, jnp.broadcast_to(z[b], (4, 3)),
                                               np.asarray(seqs[b, :4])), rtol=1e-4)
  # alpha = 0 prefers short hypotheses at least as much as alpha = 1.
  short = decoding.generate(model, params, z, max_length=max_length, strategy="beam",
                            beam_size=4, length_penalty=0.0)
  long = decoding.generate(model, params, z, max_length=max_length, strategy="beam",
                           beam_size=4, length_penalty=1.0)
  assert (np.asarray(short) != PAD_ID).sum() <= (np.asarray(long) != PAD_ID).sum()


def test_beam_search_beats_greedy_in_log_probability():
  model, params = make(eos_bias=0.5, sharpen=1.0)
  z = latents(model)
  greedy = np.asarray(decoding.generate(model, params, z, max_length=L))
  beam = np.asarray(decoding.generate(model, params, z, max_length=L, strategy="beam",
                                      beam_size=5, length_penalty=0.0))
  lg, lb = sequence_logp(model, params, z, greedy), sequence_logp(model, params, z, beam)
  assert np.all(lb >= lg - 1e-4)
  assert np.sum(lb > lg + 1e-3) >= 1


def test_interpolation_endpoints_decode_like_reconstructions():
  model, params = make(eos_bias=3.0)
  tokens = decoding.pad_batch([np.asarray([5, 6, 7, EOS_ID]), np.asarray([9, 4, EOS_ID])])
  key = jax.random.key(0)
  z_path, path = decoding.interpolate(model, params, tokens, key, num_steps=6, max_length=L)
  z_rec, rec = decoding.reconstruct(model, params, tokens, key, max_length=L)
  assert z_path.shape == (6, 3)
  np.testing.assert_allclose(z_path[0], z_rec[0], rtol=1e-6)
  np.testing.assert_allclose(z_path[-1], z_rec[1], rtol=1e-6)
  np.testing.assert_allclose(z_path[2], 0.6 * z_rec[0] + 0.4 * z_rec[1], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(path[0], rec[0])
  np.testing.assert_array_equal(path[-1], rec[1])
  assert not np.array_equal(rec[0], rec[1])
  # A posterior sample is not the mean.
  z_s, _ = decoding.reconstruct(model, params, tokens, key, max_length=L, use_mean=False)
  assert np.abs(np.asarray(z_s - z_rec)).min() > 0


def test_language_model_decodes_without_z():
  model, params = make("lm", eos_bias=1.0)
  z, out = decoding.prior_sample(model, params, jax.random.key(0), 8, max_length=L,
                                 strategy="sample")
  assert z.shape == (8, 0)
  check_well_formed(out, L)
  assert len(set(map(tuple, np.asarray(out)))) > 1
  with pytest.raises(ValueError, match="latent_dim 0"):
    decoding.reconstruct(model, params, np.ones((1, 2), np.int32), jax.random.key(0),
                         max_length=L)


def test_bad_arguments_are_refused():
  model, params = make()
  z = latents(model, b=1)
  with pytest.raises(ValueError, match="strategy"):
    decoding.generate(model, params, z, max_length=L, strategy="nucleus")
  with pytest.raises(ValueError, match="temperature"):
    decoding.generate(model, params, z, jax.random.key(0), max_length=L, strategy="sample",
                      temperature=0.0)
  with pytest.raises(ValueError, match="key"):
    decoding.generate(model, params, z, max_length=L, strategy="top_p")


def test_token_accuracy_and_bleu_by_hand():
  refs = [np.asarray([5, 6, 7, EOS_ID]), np.asarray([8, 9, EOS_ID])]
  hyps = [np.asarray([5, 6, 8, EOS_ID, PAD_ID]), np.asarray([8, 9, EOS_ID, 4, 4])]
  acc = reconstruction.token_accuracy(hyps, refs)
  assert acc["token_accuracy"] == pytest.approx(6 / 7)
  assert acc["exact_match"] == 0.5 and acc["num_tokens"] == 7
  short = reconstruction.token_accuracy([np.asarray([EOS_ID])], [refs[0]])
  assert short["token_accuracy"] == 0.0
  assert reconstruction.corpus_bleu(["a b c d"], ["a b c d"])["bleu"] == pytest.approx(100.0)
  # 3 of 4 unigrams, 2/3 bigrams, 1/2 trigrams, 0/1 4-grams: sacrebleu's 'exp'
  # smoothing gives the zero 4-gram count 1/2; no brevity penalty.
  b = reconstruction.corpus_bleu(["a b c x"], ["a b c d"])
  expected = 100 * np.exp(np.mean(np.log([3 / 4, 2 / 3, 1 / 2, 0.5 / 1])))
  assert b["bleu"] == pytest.approx(expected, rel=1e-3)
  assert "tok:none" in b["bleu_signature"]


def guided_greedy_by_hand(model, params, z, contrast, w, max_length):
  """Step by step in numpy: argmax of (1 + w) log p(.|z) - w log p(.|contrast)
  over the words and </s>, the same prefix fed to both decoders."""
  variables = {"params": params}
  step = jax.jit(lambda h, token, code: model.apply(variables, h, token, code,
                                                   method="decode_step"))
  h = model.apply(variables, z, method="decode_init")
  h_c = model.apply(variables, contrast, method="decode_init")
  token = jnp.full((z.shape[0],), BOS_ID)
  out = np.full((z.shape[0], max_length), PAD_ID)
  done = np.zeros(z.shape[0], bool)
  for t in range(max_length):
    if done.all():
      break
    h, logits = step(h, token, z)
    h_c, logits_c = step(h_c, token, contrast)
    lp = np.asarray(jax.nn.log_softmax(logits, -1), np.float64)
    lp_c = np.asarray(jax.nn.log_softmax(logits_c, -1), np.float64)
    score = (1 + w) * lp - w * lp_c
    score[:, [PAD_ID, BOS_ID]] = -np.inf
    nxt = np.where(done, PAD_ID, score.argmax(-1))
    out[:, t] = nxt
    done |= nxt == EOS_ID
    token = jnp.asarray(nxt)
  return out


def test_guidance_steers_away_from_the_contrast_code():
  model, params = make(eos_bias=MIXED)
  z, contrast = latents(model, b=8, seed=3), latents(model, b=8, seed=4)
  unguided = np.asarray(decoding.generate(model, params, z, max_length=L))
  # w = 0 is the unguided decoder, whatever the contrast, for every strategy.
  key = jax.random.key(2)
  for strategy in decoding.STRATEGIES:
    kw = dict(max_length=L, strategy=strategy, top_k=3, top_p=0.8, beam_size=3)
    np.testing.assert_array_equal(
        decoding.generate(model, params, z, key, guidance=0.0, contrast_z=contrast, **kw),
        decoding.generate(model, params, z, key, **kw))
  for w in (0.5, 2.0):
    guided = np.asarray(decoding.generate(model, params, z, max_length=L, guidance=w,
                                          contrast_z=contrast))
    np.testing.assert_array_equal(guided, guided_greedy_by_hand(model, params, z, contrast,
                                                                w, L))
    check_well_formed(guided, L)
    assert not np.array_equal(guided, unguided)  # the test can tell them apart
    beam1 = decoding.generate(model, params, z, max_length=L, strategy="beam", beam_size=1,
                              guidance=w, contrast_z=contrast)
    np.testing.assert_array_equal(beam1, guided)
  # Guiding away from the code itself changes nothing.
  np.testing.assert_array_equal(
      decoding.generate(model, params, z, max_length=L, guidance=2.0, contrast_z=z), unguided)


def test_guided_sampling_draws_from_the_guided_distribution():
  model, params = make(sharpen=1.0)
  n, w = 4000, 1.5
  z = jnp.broadcast_to(latents(model, b=1, seed=3), (n, 3))
  contrast = jnp.broadcast_to(latents(model, b=1, seed=4), (n, 3))
  out = np.asarray(decoding.generate(model, params, z, jax.random.key(5), max_length=1,
                                     strategy="sample", guidance=w, contrast_z=contrast))
  freq = np.bincount(out[:, 0], minlength=V) / n
  p, q = first_token_probs(model, params, z[:1]), first_token_probs(model, params, contrast[:1])
  guided = np.where(p > 0, p ** (1 + w) / np.where(q > 0, q, 1) ** w, 0)
  guided /= guided.sum()
  assert np.abs(freq - guided).max() < 0.03, (freq.round(3), guided.round(3))
  assert np.abs(guided - p).max() > 0.1  # guidance moved the distribution


def test_bad_guidance_is_refused():
  model, params = make()
  z = latents(model, b=2)
  with pytest.raises(errors.ConfigError, match="guidance=-1"):
    decoding.generate(model, params, z, max_length=L, guidance=-1.0, contrast_z=z)
  with pytest.raises(ValueError, match="needs a contrast"):
    decoding.generate(model, params, z, max_length=L, guidance=1.0)
  with pytest.raises(ValueError, match="contrast_z has shape"):
    decoding.generate(model, params, z, max_length=L, guidance=1.0, contrast_z=z[:1])
