"""The review workspace: instructors check, correct and export grades in the browser.

``grader review GRADED.csv --rubric RUBRIC.yaml`` serves :func:`create_review_app` for a
:class:`Workspace`: the graded file, the rubric, and the review's SQLite database beside the
file (:class:`ReviewStore`), which records every action with an audit trail.

>>> from grader.review import Workspace, create_review_app
"""

from grader.review.app import create_review_app
from grader.review.store import ReviewConflict, ReviewStore, review_path
from grader.review.workspace import Workspace

__all__ = ["ReviewConflict", "ReviewStore", "Workspace", "create_review_app", "review_path"]
