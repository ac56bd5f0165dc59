"""Fine-tuning: freeze plans, the callback that applies them, optimizer parameter groups.

- :mod:`~visionlab.finetune.plans`: the plans of the ``freeze/`` config group (none,
  feature_extraction, last_n, staged, two_phase, gradual), pure functions of the epoch.
- :mod:`~visionlab.finetune.lp_ft`, :mod:`~visionlab.finetune.auto`: linear probe then
  fine-tune; the four-case automatic choice.
- :mod:`~visionlab.finetune.callback`: applies a plan at every epoch start.
- :mod:`~visionlab.finetune.param_groups`, :mod:`~visionlab.finetune.lr_phase`: one
  optimizer group per stage from the start; phase LR factors composed with any scheduler.
- :mod:`~visionlab.callbacks.epoch_seed`: per-epoch reseeding so resumed runs replay exactly.
"""
