"""Reproducible studies of the seed papers: skip connections vs complexity, context vs FBR."""
