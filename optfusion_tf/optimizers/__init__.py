"""Optimizers no maintained library provides for Keras 3: LazyAdam (sparse, row-wise Adam for the embedding table)."""
