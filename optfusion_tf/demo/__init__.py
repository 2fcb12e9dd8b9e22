"""The built-in synthetic demo: planted-model Criteo-format data, the demo's models, and the end-to-end job (python -m optfusion_tf.demo)."""
