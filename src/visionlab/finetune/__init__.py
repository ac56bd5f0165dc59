"""Fine-tuning: freeze plans, the callback that applies them, optimizer parameter groups."""
