"""Training: one loop shared by every stage, checkpoints, schedules, distributed helpers."""
