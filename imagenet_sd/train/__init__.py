"""Stage 5, train: ResNets and checkpoints (models), the training run (training) with its schedules and
augmentations (schedules, gpu_augment, transforms), resume state (resume), metrics log (train_log) and several
processes per node (distributed)."""
