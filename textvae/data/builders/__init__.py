"""TFDS builders for the corpora textvae trains on; all write `array_record`."""
