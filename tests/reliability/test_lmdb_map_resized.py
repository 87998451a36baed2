"""Regression: an edge keeps following a writer whose LMDB map grew past the edge's own map.

Readers map the store with a fixed size. When the writer runs with a larger ``--lmdb-map-size``
(or restarts with one, as the map-full recovery does) and the data grows beyond the reader's
map, LMDB refuses the reader's next transaction with ``MDB_MAP_RESIZED``; an edge that only
logged it would stay on its old version for good. The reader adopts the new size instead.
The writer runs in a subprocess (py-lmdb cannot open one environment twice in a process).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.processes import REPO
from contract.store import SnapshotReader

GROW = r"""
import sys
from pathlib import Path
from contract.store import ChangeSet, SnapshotWriter

writer = SnapshotWriter(Path(sys.argv[1]), map_size=int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    writer.publish(ChangeSet(widgets={f"w{i}": {"blob": "x" * 200_000}}))
print(writer.version())
writer.close()
"""


def _grow(data: Path, map_size: int, values: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", GROW, str(data), str(map_size), str(values)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_reader_adopts_a_map_that_grew_past_its_own(tmp_path: Path) -> None:
    assert _grow(tmp_path, 1 << 20, 1) == 1
    reader = SnapshotReader(tmp_path, map_size=1 << 20)
    try:
        assert reader.version() == 1
        # The writer comes back with a 64 MiB map and writes ~8 MB: far past the reader's map.
        assert _grow(tmp_path, 64 << 20, 40) == 41
        assert reader.version() == 41
        version, tables = reader.read_all()
        assert version == 41 and len(tables["widgets"]) == 40
    finally:
        reader.close()
