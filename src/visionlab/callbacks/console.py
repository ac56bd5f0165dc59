"""The run's console: Lightning's Rich progress bar and model summary without the lines a user has
no use for.

Lightning 2.6's summary adds a FLOPs column and a ``Total FLOPs`` line, which read 0 for every
module unless the model defines an ``example_input_array``; its progress bar shows ``v_num``,
which under visionlab's TensorBoard logger is the tail of the run's override string
(``v_num: hs=3``), and the running loss under its full metric name, cut to ``train/loss_runnin…``
by the bar's width.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count

# Metric names shortened on the bar (the full names are in TensorBoard and the logs).
BAR_NAMES = {"train/loss_running": "loss"}


class RunProgressBar(RichProgressBar):
    """Rich's progress bar showing the logged progress-bar metrics under short names, without v_num."""

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        """The bar's metrics: ``v_num`` dropped, names in :data:`BAR_NAMES` shortened."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {BAR_NAMES.get(name, name): value for name, value in metrics.items()}

    def _get_train_description(self, current_epoch: int) -> str:
        """``Epoch 3/9``; ``Epoch 3`` in a run bounded by steps alone (``max_epochs=-1``: Lightning
        would show ``3/-2``)."""
        if self.trainer.max_epochs == -1:
            return f"Epoch {current_epoch}"
        return super()._get_train_description(current_epoch)


class RunModelSummary(RichModelSummary):
    """Rich's model summary: name, type, parameters and mode per module; parameter totals."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int = 0,
                  **summarize_kwargs: Any) -> None:
        """Print the table and the parameter counts; FLOPs and module-mode counts left out."""
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        table.add_column(" ", style="dim")
        for name, _ in columns[1:]:
            table.add_column(name, justify="right" if name.startswith("Params") else "left",
                             no_wrap=name == "Name")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        frozen = total_parameters - trainable_parameters
        console.print(f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}   "
                      f"[bold]Frozen[/]: {get_human_readable_count(int(frozen))}   "
                      f"[bold]Total[/]: {get_human_readable_count(int(total_parameters))} "
                      f"({get_formatted_model_size(model_size)} MB)")
