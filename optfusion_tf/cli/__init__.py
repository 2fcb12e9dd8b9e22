"""absl command-line programs: flag definitions and main functions (scripts stay thin)."""
