"""Figures, made with matplotlib from result records only (never from live objects)."""
