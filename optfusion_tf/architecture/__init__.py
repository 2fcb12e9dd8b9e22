"""The search space and the architecture spec (arch.json, presets): plain Python, no TensorFlow."""
