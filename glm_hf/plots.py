"""Training plots for model folders (matplotlib, headless)."""


def save_loss_curve(log_history: list[dict], path: str, title: str | None = None) -> str:
    """Plot training loss and evaluation loss against the optimizer step; write a PNG to ``path``.

    ``log_history`` is ``trainer.state.log_history``: entries with ``loss`` are training logs, entries with
    ``eval_loss`` evaluations (each with its ``step``). The file is written next to ``path`` and renamed into
    place, so a reader never sees half a PNG. Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: servers, CI, subprocesses
    import matplotlib.pyplot as plt

    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    if not train and not evaluation:
        raise ValueError("log_history has no 'loss' or 'eval_loss' entries: nothing to plot (set logging_steps)")

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    if train:
        axes.plot(*zip(*train), label="train loss", color="tab:blue", linewidth=1.2)
    if evaluation:
        axes.plot(*zip(*evaluation), label="eval loss", color="tab:orange", marker="o", linewidth=1.5)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()

    from .evaluation import save_png

    return save_png(plt, figure, path)
