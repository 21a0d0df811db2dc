"""Model zoo: registered networks with a bias-free final ``classifier`` Linear by default.

Shapes: every model maps (B, C, H, W) float inputs to (B, num_classes) logits.
"""

from gradleak.models import alexnet, fcn, lenet, resnet
from gradleak.models.init import INITS, apply_init
from gradleak.models.registry import build, default_input_shape, names, register

__all__ = [
    "INITS",
    "alexnet",
    "apply_init",
    "build",
    "default_input_shape",
    "fcn",
    "lenet",
    "names",
    "register",
    "resnet",
]
