"""Grading a whole dataset of submissions on a Ray cluster: ``grade_dataset(submissions, rubric, output)``.

Ray Data reads CSV or Parquet files of the long layout (one row per answer), a
pool of actors grades them, each with its own model loaded and verified once,
and every run of consecutive rows is written as one shard (Parquet or CSV) with
the columns of ``grader grade`` plus the row's input file and row number. A rerun
skips the rows already in complete shards; a worker killed mid-run costs time,
never rows. Ray is an optional dependency: ``pip install 'grader[ray]'``.

>>> from grader.distributed import grade_dataset
"""

from grader.distributed.dataset import DatasetResult, grade_dataset

__all__ = ["DatasetResult", "grade_dataset"]
