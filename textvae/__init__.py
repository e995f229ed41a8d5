"""textvae: latent-variable text models (sentence VAEs) in JAX/Flax."""

__version__ = "0.1.0"
