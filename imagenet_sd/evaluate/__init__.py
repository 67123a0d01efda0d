"""Stage 6, evaluate: top-1/top-5 on real sets (evaluation, corruptions), adversarial attacks (attacks, protocols),
frozen features (features), linear probes (probes), representation statistics (representation) and the header
the evaluate and attack records share (records)."""
