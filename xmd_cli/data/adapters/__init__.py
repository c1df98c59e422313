"""Dataset adapters: each reads one kind of dataset into manifest samples.

An adapter is a function `read(config: DataConfig, workdir: Path, progress=None) -> AdapterOutput`
where `progress(stage, done, total)` reports how far it got (total None while unknown).
It lists what the source names and reports what it could not parse; it does not
open audio or images (the checks in `xmd_cli.data.checks` do, for every adapter
alike). Adapters load lazily, so `xmd --help` imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from xmd_cli.data.manifest import Sample, Trial
from xmd_cli.registry import Registry

ADAPTERS: Registry[Callable] = Registry("adapter", key="data.adapter")
ADAPTERS.add("voxceleb", "xmd_cli.data.adapters.voxceleb:read")
ADAPTERS.add("kaldi", "xmd_cli.data.adapters.kaldi:read")
ADAPTERS.add("imagefolder", "xmd_cli.data.adapters.imagefolder:read")
ADAPTERS.add("table", "xmd_cli.data.adapters.table:read")
ADAPTERS.add("synthetic-persons", "xmd_cli.data.synthetic.persons:read")
ADAPTERS.add("synthetic-captions", "xmd_cli.data.synthetic.captions:read")


@dataclass
class Problem:
    """Something wrong with one sample or one source line, for prepare-report.json."""

    # missing-file, duplicate-id, empty-class, unreadable-audio, unreadable-image, unsupported-audio,
    # bad-line, bad-segment, bad-layout, bad-name, no-images, no-speaker, no-media, unknown-utterance,
    # missing-recording, unknown-trial-id, empty-trials, ...
    kind: str
    where: str  # the sample id, or file:line of the source
    detail: str  # what is wrong and, where it helps, what to do
    sample_id: str | None = None  # set when the problem disqualifies that sample


@dataclass
class AdapterOutput:
    samples: list[Sample]
    root: Path  # manifest paths are relative to this
    trials: dict[str, list[Trial]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def get_adapter(name: str) -> Callable:
    return ADAPTERS.get(name)
