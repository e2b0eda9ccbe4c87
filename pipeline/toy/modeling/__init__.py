"""Flow-matching models of the 2-D mixture of 8 Gaussians: train, sample, evaluate."""
