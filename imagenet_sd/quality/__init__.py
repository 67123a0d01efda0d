"""Stage 4, quality: a clone measured before training on it: CLIP embeddings (clip_embed), the quality measures
(quality), curation at pack time (curation), and the dataset card (cards)."""
