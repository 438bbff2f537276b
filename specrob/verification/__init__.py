"""Verification: per-centre queries, bound propagation, Marabou, VNN-LIB, the pipeline."""
