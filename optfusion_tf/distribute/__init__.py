"""Multi-worker and multi-GPU glue around tf.distribute: TF_CONFIG parsing, strategies, worker roles and collectives."""
