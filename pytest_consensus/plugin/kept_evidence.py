"""A failing test's evidence, kept where later runs do not remove it.

pytest keeps the temp folders of its last three runs only, so the history and node logs a
failure message points to are gone three runs later. A failing test's folders are copied,
after its teardown (when its history and node logs are written), into a folder of this run:
under the report folder when ``--consensus-report`` is given (``<report>/evidence``), else
under ``.pytest-consensus/evidence`` in pytest's root folder, beside ``.pytest_cache``,
where the newest :data:`KEPT_RUNS` runs that kept something stay.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from pytest_consensus.plugin.summary import evidence_folder_name, slug
from pytest_consensus.report.records import without_group

#: Runs whose evidence stays in the default folder; older ones are removed when a run
#: keeps something. A report folder is the user's own and is never pruned.
KEPT_RUNS = 10


class KeptEvidence:
    """Where this run keeps the evidence of its failing tests."""

    def __init__(self, root: Path, *, prune: bool, seed: int) -> None:
        self.root = root
        self.prune = prune
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.run = root / f"{stamp}-seed{seed}"
        #: Source folders copied so far in this run, and where: a folder two tests share
        #: (the crash loop's, tens of megabytes) is copied once and linked from the other.
        self._copied: dict[Path, Path] = {}

    @classmethod
    def for_run(cls, rootdir: Path, report_dir: Path | None, seed: int) -> KeptEvidence:
        if report_dir is not None:
            return cls(report_dir / "evidence", prune=False, seed=seed)
        return cls(rootdir / ".pytest-consensus" / "evidence", prune=True, seed=seed)

    def folder_for(self, test_id: str) -> Path:
        """Where the test's evidence will be (named in its failure report before the copy),
        named like its id in the certificate (without pytest-xdist's ``@<group>`` suffix)."""
        return self.run / evidence_folder_name(without_group(test_id))

    def keep(self, test_id: str, sources: Iterable[Path]) -> Path:
        """Copy each existing source folder into the test's folder (one subfolder each
        when there are several; a link to the first copy for a folder already kept in this
        run) and return the folder."""
        target = self.folder_for(test_id)
        existing = sorted({source for source in sources if source.is_dir()})
        for source in existing:
            destination = target if len(existing) == 1 else target / slug(source.name)
            earlier = self._copied.get(source)
            if earlier is not None:
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.symlink_to(os.path.relpath(earlier, destination.parent))
                continue
            shutil.copytree(source, destination, dirs_exist_ok=True, symlinks=True)
            self._copied[source] = destination
        if self.prune:
            self._prune()
        return target

    def _prune(self) -> None:
        runs = sorted((p for p in self.root.iterdir() if p.is_dir()), key=lambda p: p.name)
        for old in runs[:-KEPT_RUNS]:
            if old != self.run:
                shutil.rmtree(old, ignore_errors=True)
