"""Example requests and responses shown in the OpenAPI docs at /docs (one per endpoint)."""

from __future__ import annotations

ANSWER = ("The RNN multiplies by the same weight matrix at every step, so gradients vanish; "
          "the LSTM keeps a cell state updated additively through gates.")

GRADE_REQUEST = {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": ANSWER}

INLINE_REQUEST = {
    "question": {
        "prompt": "Why does ice float on water?",
        "reference_answers": ["Ice is less dense than liquid water because its hydrogen bonds hold the "
                              "molecules in an open lattice."],
        "key_phrases": [{"text": "ice is less dense than water", "points": 1},
                        {"text": "hydrogen bonds form an open lattice", "points": 1}],
        "max_points": 2,
    },
    "answer": "Because frozen water is lighter per volume than liquid water.",
}

GRADE_RESPONSE = {
    "question_id": "q5", "question_type": "short_answer", "points": 4.0, "max_points": 5.0,
    "label": "correct", "confidence": 0.5575, "needs_review": True,
    "feedback": "You stated: additive updates with gating (\"the LSTM keeps a cell state updated additively "
                "through gates\"); ... Missing: multiplicative recurrence (Say what kind of operation the "
                "vanilla RNN repeats at every step.).",
    "concepts": [
        {"concept": "additive updates with gating", "points": 1.0, "awarded": 1.0, "found": True, "strength": 1.0,
         "evidence": "the LSTM keeps a cell state updated additively through gates", "method": "lexical",
         "negated": False, "required": False},
        {"concept": "multiplicative recurrence", "points": 1.0, "awarded": 0.0, "found": False, "strength": 0.253,
         "evidence": None, "method": "lexical", "negated": False, "required": False},
    ],
    "misconceptions": [],
    "flags": [],
    "signals": {"ref_sim": 0.885, "concept_cover": 0.8},
    "probabilities": {"correct": 0.5575, "incorrect": 0.0084, "partially_correct": 0.4341},
}

CHOICE_RESPONSE = {
    "question_id": "q1", "question_type": "multiple_choice", "points": 1.0, "max_points": 1.0,
    "label": "correct", "confidence": 1.0, "needs_review": False, "feedback": "Correct.",
    "concepts": [], "misconceptions": [], "flags": [], "signals": {}, "probabilities": {},
}

BATCH_REQUEST = {"items": [GRADE_REQUEST, {"rubric_id": "rnn_lstm", "question_id": "q1", "answer": "B"}]}

BATCH_RESPONSE = {"results": [{"index": 0, "result": GRADE_RESPONSE, "error": None},
                              {"index": 1, "result": CHOICE_RESPONSE, "error": None}],
                  "graded": 2, "failed": 0}

ATTEMPT_REQUEST = {"attempt_id": "student-42-try-1",
                   "answers": {"q1": "B", "q2": "B", "q3": "true", "q4": "false", "q5": ANSWER}}

ATTEMPT_RESPONSE = {"rubric_id": "rnn_lstm", "attempt_id": "student-42-try-1", "points": 8.0, "max_points": 9.0,
                    "answered": 5, "needs_review": True,
                    "results": [CHOICE_RESPONSE, {**CHOICE_RESPONSE, "question_id": "q2"}, "...", GRADE_RESPONSE]}

RUBRIC_LIST = {"rubrics": [{"id": "rnn_lstm", "title": "Recurrent networks and LSTMs", "language": "en",
                            "questions": 5, "max_points": 9.0}]}

RUBRIC_DETAIL = {
    "id": "rnn_lstm", "title": "Recurrent networks and LSTMs", "language": "en", "max_points": 9.0,
    "questions": [
        {"id": "q1", "type": "multiple_choice", "prompt": "Why does the vanilla RNN fail ...?", "max_points": 1.0,
         "options": [{"id": "A", "text": "..."}, {"id": "B", "text": "..."}]},
        {"id": "q3", "type": "true_false", "prompt": "The forget gate in an LSTM can ...", "max_points": 1.0,
         "options": None},
        {"id": "q5", "type": "short_answer", "prompt": "What is the fundamental architectural insight ...?",
         "max_points": 5.0, "options": None},
    ],
}

READY = {"status": "ready", "model": {"model": "all-MiniLM-L6-v2", "device": "cpu", "backend": "fp32"}, "rubrics": 1}

ERROR = {"error": {"code": "limit_exceeded", "message": "field 'answer' is 12000 characters long; the limit is "
                   "10000 (GRADER_MAX_ANSWER_CHARS).", "field": "answer"}}
