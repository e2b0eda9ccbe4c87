"""Conditional flow-matching weather model: data windows, network, training, rollout, forecast, evaluate."""
