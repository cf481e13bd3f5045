"""Training: the training model and its step, optimizers, callbacks, checkpoints and resuming,
several devices and workers (``tf.distribute``), the fine-tuning recipes, and the one place that
names the private Keras members still used."""
