"""Looking at models: the architecture drawing and the analytic FLOP count."""
