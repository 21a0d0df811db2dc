"""Find the Linear layers of a fully connected ReLU network, in forward order.

Layer-by-layer inversion is only exact when the model is a plain chain
``[flatten] Linear (ReLU Linear)*``: anything else between two Linear layers (a convolution, a
sigmoid, a skip connection) breaks the rank-one structure it relies on. The chain is read from
the model's traced forward graph (torch.fx), not from module registration order, so a model
that registers its layers in another order, or reuses one, is caught.

Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3 (FCN-4 analytic inversion).
"""

from __future__ import annotations

import torch
from torch import fx, nn
from torch.nn import functional

_FLATTENS = (torch.flatten,)
_RELUS = (torch.relu, functional.relu)
_PASS_MODULES = (nn.Identity,)


class NotLinearReluChain(ValueError):  # noqa: N818 - reads as the condition it reports
    """The model is not ``[flatten] Linear (ReLU Linear)*``; the message says where."""


def _module_kind(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Flatten):
        return "flatten" if module.start_dim == 1 and module.end_dim == -1 else "other"
    if isinstance(module, _PASS_MODULES):
        return "pass"
    return "other"


def _node_kind(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return _module_kind(modules[str(node.target)])
    if node.op == "call_function" and node.target in _RELUS:
        return "relu"
    if node.op == "call_method" and node.target == "relu":
        return "relu"
    flatten_call = (node.op == "call_function" and node.target in _FLATTENS) or (
        node.op == "call_method" and node.target == "flatten"
    )
    if flatten_call:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return "flatten" if (start, end) == (1, -1) else "other"
    return "other"


def _describe(node: fx.Node) -> str:
    return f"{node.op} {getattr(node.target, '__name__', node.target)!s}"


def linear_relu_chain(model: nn.Module, *, classifier: str) -> tuple[str, ...]:
    """Names of the Linear modules of ``model`` in forward order, ending with ``classifier``.

    Raises `NotLinearReluChain` (a ValueError) naming the first operation that does not fit.
    Shapes: not applicable (reads structure only; runs no data through the model).
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as error:  # any tracing failure means "cannot verify"
        raise NotLinearReluChain(
            f"cannot trace the model's forward with torch.fx ({type(error).__name__}: {error}); "
            "layer-by-layer inversion needs a plain Linear+ReLU chain"
        ) from error
    modules = dict(model.named_modules())
    nodes = [node for node in graph.nodes if node.op not in ("placeholder", "output")]
    if sum(node.op == "placeholder" for node in graph.nodes) != 1:
        raise NotLinearReluChain("the model's forward must take exactly one input")
    linears: list[str] = []
    expect_linear = True
    previous: fx.Node = next(node for node in graph.nodes if node.op == "placeholder")
    for node in nodes:
        inputs = node.all_input_nodes
        if inputs != [previous]:
            raise NotLinearReluChain(
                f"{_describe(node)} does not read only the previous operation's output: "
                "the model is not a plain chain (skip connection or several inputs)"
            )
        kind = _node_kind(node, modules)
        if kind == "other" or (kind == "flatten" and linears):
            raise NotLinearReluChain(
                f"{_describe(node)} is neither Linear nor ReLU: layer-by-layer inversion "
                "needs a fully connected ReLU network (no convolutions or other activations)"
            )
        if kind == "linear":
            if not expect_linear:
                raise NotLinearReluChain(
                    f"Linear {node.target} follows Linear {linears[-1]} without a ReLU between"
                )
            name = str(node.target)
            if name in linears:
                raise NotLinearReluChain(f"Linear {name} is applied twice in the forward pass")
            linears.append(name)
            expect_linear = False
        elif kind == "relu":
            if expect_linear:
                raise NotLinearReluChain("a ReLU must follow a Linear layer, once")
            expect_linear = True
        previous = node
    output = next(node for node in graph.nodes if node.op == "output")
    if output.all_input_nodes != [previous]:
        raise NotLinearReluChain("the model's output must be the last operation's result alone")
    if not linears or linears[-1] != classifier or expect_linear:
        raise NotLinearReluChain(
            f"the forward pass must end with the classifier Linear {classifier!r} "
            f"(found Linear layers {linears})"
        )
    return tuple(linears)
