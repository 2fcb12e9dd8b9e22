"""The OptFusion model: OptFusionModel and its node plan, the straight-through estimator, and the grouped-optimizer training step (the paper's one-shot step with split optimizers)."""
