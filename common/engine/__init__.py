"""The training engine: populations of stacked models (`Population`), their resumable state (`TrainState`), the
step loop with hooks (`Trainer`), registries of objectives and optimizers, and inference."""
