"""Flow-matching models of molecular conformations (ensembles) and time-lagged dynamics (forecasts)."""
