"""The toy domain: a 2-D mixture of 8 Gaussians to exercise the generative core from the CLI."""
