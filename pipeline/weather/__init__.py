"""Weather data: sources, ingest recipes, validation, the training store, and the embedded atmosphere."""
