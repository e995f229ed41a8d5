"""Data: TFDS builders (array_record), vocabulary and the grain batching pipeline."""
