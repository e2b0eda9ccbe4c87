"""Molecules: MD ingest, the embedded alanine-dipeptide simulator, structure stores, export, evaluation."""
