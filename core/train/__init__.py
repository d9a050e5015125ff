"""The training spine: Lightning tasks, runs, CLIs, callbacks, fine-tuning, validation, data plumbing."""
