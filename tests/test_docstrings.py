"""Every public function and class of the metrics, the loss and the store shows a runnable example.

The examples themselves run as doctests (the Makefile's DOCTESTS list, in the fast
tier); this test keeps the rule for code added later: a public function or class
(no leading underscore, defined in the module itself, not imported into it) whose
docstring has no `>>>` example fails here, by name.
"""

import importlib
import inspect
import pkgutil

import pytest

import xmd_cli.metrics
import xmd_cli.models
import xmd_cli.shards

MODULES = sorted({*(f"xmd_cli.metrics.{m.name}" for m in pkgutil.iter_modules(xmd_cli.metrics.__path__)),
                  *(f"xmd_cli.shards.{m.name}" for m in pkgutil.iter_modules(xmd_cli.shards.__path__)),
                  *(f"xmd_cli.models.{m.name}" for m in pkgutil.iter_modules(xmd_cli.models.__path__)
                    if m.name.startswith("distill"))})


def public_definitions(module):
    """(name, object) of each public function and class defined in `module`."""
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == module.__name__:
            yield name, obj


def test_the_walk_finds_the_modules():
    assert {"xmd_cli.metrics.verification", "xmd_cli.shards.reader", "xmd_cli.models.distill",
            "xmd_cli.models.distill_losses"} <= set(MODULES)
    assert dict(public_definitions(importlib.import_module("xmd_cli.shards.reader")))["ShardReader"]


@pytest.mark.parametrize("module_name", MODULES)
def test_public_definitions_have_an_example(module_name):
    module = importlib.import_module(module_name)
    # A class's own docstring only: inspect.getdoc would fall back to a base class's, and a
    # dataclass without one gets its signature as __doc__ (which holds no `>>>`).
    missing = [name for name, obj in public_definitions(module) if ">>>" not in (obj.__doc__ or "")]
    assert not missing, (f"{module_name}: public functions/classes without a `>>>` example in their docstring: "
                         f"{', '.join(missing)} (add a short runnable one; it is checked by doctest)")
