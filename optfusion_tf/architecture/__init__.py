"""The search space, the architecture spec (arch.json), its validation and the presets: plain
Python, no TensorFlow."""
