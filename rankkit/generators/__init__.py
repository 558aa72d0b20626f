"""Generators: stages that answer from the top passages of a run."""
