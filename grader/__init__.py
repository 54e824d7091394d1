"""grader: short-answer auto-grading with sentence embeddings, key phrases and a learned combiner.

>>> from grader import load_rubric, Grader
>>> grader = Grader(load_rubric("rubrics/rnn_lstm.yaml"))
>>> result = grader.grade("q5", "The LSTM's cell state is updated additively ...")
"""

from grader.errors import GraderError, InputDataError, ModelError, RubricError, UnknownQuestionError
from grader.rubric import Rubric, load_rubric


def __getattr__(name):
    # The engine pulls in torch; import it only when asked for.
    if name == "Grader":
        from grader.engine import Grader

        return Grader
    if name == "GradeResult":
        from grader.result import GradeResult

        return GradeResult
    raise AttributeError(f"module 'grader' has no attribute {name!r}")


__all__ = ["Grader", "GradeResult", "GraderError", "InputDataError", "ModelError", "Rubric", "RubricError",
           "UnknownQuestionError", "load_rubric"]
__version__ = "0.1.0"
