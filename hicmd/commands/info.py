"""`hicmd info`: parameters and MACs per module for a config."""

from __future__ import annotations

from typing import Annotated

import typer

NAME = "info"
EXAMPLES = ("hicmd info -c paper", "hicmd info -c tiny --classes 296   # SYSU-MM01's training identities")


def command(
    config: Annotated[str, typer.Option("--config", "-c", help="Preset (paper, tiny, edge) or a "
                                                    ".toml/.yaml/.json file.")] = "paper",
    classes: Annotated[int, typer.Option(help="Identity classes for the classifier (RegDB 206, SYSU 296).")] = 206,
) -> None:
    """Model summary: parameters and MACs per module for a config."""
    from rich.console import Console
    from rich.table import Table

    from hicmd.config import load_config
    from hicmd.model.summary import summarise

    cfg = load_config(config)
    m = cfg.model
    table = Table(title=f"Hi-CMD '{cfg.name}': {m.height}x{m.width} input, {m.backbone}, "
                        f"prototype {m.prototype_shape}, attribute {m.attribute_dim}-d, embedding {m.embedding_dim}-d")
    table.add_column("module")
    table.add_column("parameters", justify="right")
    table.add_column("GMACs / image", justify="right")
    for row in summarise(m, classes):
        table.add_row(row.name, f"{row.parameters:,}", f"{row.macs / 1e9:.3f}")
    Console().print(table)
