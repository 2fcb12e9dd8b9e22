"""SavedModel export for TF Serving (DESIGN.md section 6; docs/serving.md).

Modules:

- `retrain_run`: opens and checks a re-train run directory, loads its model and dataset stats.
- `vocab_assets`: per-field lookup-table assets derived from vocab/<field>.tsv.
- `graph_rules`: the preprocessing's numeric rules and Avazu hour split as TensorFlow ops.
- `raw_features`: `RawFeatureMapper`, raw string columns -> feature ids in the graph.
- `signatures`: `serving_default` (ids) and `predict_raw` (raw strings) -> probability.
- `request_example`: request_example.json, REST bodies from real test-split rows.
- `savedmodel`: `export_savedmodel`, the versioned, atomic, self-checked export.
"""
