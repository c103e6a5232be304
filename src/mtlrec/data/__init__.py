"""Data: readers, splits, the encoder, tensor batches, the shop simulator and data sources."""
