"""Model zoo: registered networks with a bias-free final ``classifier`` Linear by default.

Shapes: every model maps (B, C, H, W) float inputs to (B, num_classes) logits.
"""

from gradleak.models import alexnet, fcn, lenet, resnet
from gradleak.models.checkpoint import Checkpoint, load, load_checkpoint, save_checkpoint
from gradleak.models.init import INITS, apply_init
from gradleak.models.registry import (
    Architecture,
    build,
    build_architecture,
    build_for,
    default_input_shape,
    names,
    register,
)

__all__ = [
    "INITS",
    "Architecture",
    "Checkpoint",
    "alexnet",
    "apply_init",
    "build",
    "build_architecture",
    "build_for",
    "default_input_shape",
    "fcn",
    "lenet",
    "load",
    "load_checkpoint",
    "names",
    "register",
    "resnet",
    "save_checkpoint",
]
