"""Using a trained classifier from its checkpoint alone: evaluation, prediction, export."""
