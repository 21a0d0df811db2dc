"""Range-checked argparse types every command uses: a bad value is an argparse error that
names its flag and the allowed range, before any work starts."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: Seeds that go straight into torch.manual_seed / torch.Generator / numpy (int64 there).
TORCH_SEED_LIMIT = 2**63
#: The smallest image side the CLI accepts (LeNet and AlexNet's small stem need this much).
MIN_IMAGE_SIZE = 8


def integer(minimum: int, limit: int | None = None, *, limit_text: str = "") -> Callable:
    """An argparse ``type``: an int >= ``minimum`` (and < ``limit``, written ``limit_text``)."""
    allowed = (
        f"an integer >= {minimum}"
        if limit is None
        else f"an integer in [{minimum}, {limit_text or limit} - 1]"
    )

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < minimum or (limit is not None and value >= limit):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    return parse


def number(minimum: float, maximum: float | None = None, *, strict: bool = False) -> Callable:
    """An argparse ``type``: a finite float >= ``minimum`` (> if ``strict``), <= ``maximum``."""
    if maximum is not None:
        allowed = f"a number in [{minimum:g}, {maximum:g}]"
    else:
        allowed = f"a number {'>' if strict else '>='} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        below = value <= minimum if strict else value < minimum
        if not math.isfinite(value) or below or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    return parse


def torch_seed() -> Callable:
    """An argparse ``type`` for a seed used as is by torch and numpy: [0, 2**63 - 1]."""
    return integer(0, TORCH_SEED_LIMIT, limit_text="2**63")


def image_size() -> Callable:
    """An argparse ``type`` for ``--image-size``: a side of at least `MIN_IMAGE_SIZE` pixels."""
    return integer(MIN_IMAGE_SIZE)


def add_scale_argument(group: argparse._ArgumentGroup) -> None:
    """``--scale``: what the attack assumes about the gradient's scale (`SCALE_MODES`)."""
    from gradleak.recovery.last_layer import SCALE_MODES

    group.add_argument(
        "--scale",
        default=SCALE_MODES[0],
        choices=SCALE_MODES,
        help="gradient scale: unknown (default: fitted, as clipping or an unknown learning "
        "rate require) or known (the paper's exact gradient)",
    )
