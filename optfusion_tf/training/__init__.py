"""Running a search or a re-train: the experiment driver, exact evaluation, early stopping, kill-safe checkpoints and run directories, TensorBoard callbacks."""
