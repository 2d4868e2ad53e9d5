"""Many captures as one Parquet dataset: capture sets, the writer, the reader.

``write_dataset(sources, DIR)`` decodes each capture set (a dumpcap ring buffer,
or a lone file) into one Parquet dataset per table, partitioned by set and day,
with a manifest so a rerun decodes only what changed; ``read_dataset(DIR)``
gives the tables back as pandas. ``docs/fleet.md`` has the whole workflow.
"""

from __future__ import annotations

from camprotool.dataset.reader import Dataset, read_dataset
from camprotool.dataset.sets import CaptureSet, group_sets
from camprotool.dataset.writer import Summary, decode_set, write_dataset

__all__ = ["CaptureSet", "Dataset", "Summary", "decode_set", "group_sets", "read_dataset",
           "write_dataset"]
