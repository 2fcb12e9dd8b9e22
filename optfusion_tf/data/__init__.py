"""Raw click logs -> TFRecords, and the tf.data reader (DESIGN.md section 2).

Modules, in pipeline order:

- `formats`: what each raw format holds (columns, fields, label rule): Criteo, Avazu, KDD12, CSV.
- `raw_input`: opens plain/gzip input and cuts it into line-aligned byte blocks.
- `block_parser`: one block -> validated labels and per-field keys (Arrow's CSV reader via
  `arrow_block` where it agrees with pandas, else pandas' C parser; numpy).
- `bucketing`: numeric rules (Criteo log^2) and the Avazu hour decomposition.
- `bad_rows`: bad-row reasons, per-reason counts with first line numbers, or the first error.
- `split`: the seeded train/validation/test assignment.
- `vocabulary`: per-field value counting, id assignment and `vocab/<field>.tsv`.
- `id_cache`: pass-1 per-row value codes and provisional ids kept on disk for pass 2.
- `count_pass`, `write_pass`: the two passes; `worker_pool`: their worker processes;
  `progress`: rows/s logging.
- `example_encoding`: vectorized fixed-layout tf.train.Example serialization.
- `tfrecord_writer`: TFRecord framing (length, masked CRC32C) and shard files.
- `stats`: `DatasetStats`, the `stats.json` schema.
- `atomic_dir`: build an output directory in a temporary sibling, rename at the end.
- `preprocess`: the pipeline the CLIs and the demo call (`preprocess(kind, ...)`).
- `reader`: `make_dataset` / `load_split`, the tf.data input pipeline: shard files, row ranges
  and worker slices, reading the records; `record_decoding`: records -> (feature_ids, label)
  batches; `shuffle`: the read order (the "examples" and "chunks" shuffles, seeded passes).
- `errors`: `DataError`, `BadRowError`.

Importing this package (and every module but `reader`, `record_decoding` and `shuffle`, the
TensorFlow users) does not import TensorFlow.
"""
