"""Writes the example class for rubrics/rnn_lstm.yaml (run from the repository root).

    python examples/make_class.py

Outputs, committed next to this script:
- ``moodle_responses.csv``: a Moodle quiz "Responses" export (wide: one row per
  attempt, one "Response N" column per question), 44 students;
- ``instructor_grades.csv``: the instructor's own grades of the same answers, one
  row per answer, in the shared corpus format (``../shared/data/README.md``), so
  the evaluation harness can score the grader against them.

The answers are written by hand to have the mix of a real class: excellent,
paraphrased, partial, wrong, misconception, blank, off-topic, a bare list of the
key phrases, a copied answer, and multi-line bullet lists.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RUBRIC = HERE.parent / "rubrics" / "rnn_lstm.yaml"

# (surname, first name, q5 answer, instructor points out of 5, kind)
Q5 = [
    ("Okafor", "Chinedu", "A vanilla RNN multiplies the hidden state by the same recurrent weight matrix at every "
     "time step, so during backpropagation through time the gradient is multiplied by that matrix again and again "
     "and vanishes or explodes exponentially. The LSTM adds a separate cell state that is updated additively: the "
     "forget gate scales the old state and the input gate adds new information. Because the update is additive and "
     "gated, a forget gate near 1 lets the gradient flow back unchanged over hundreds of steps.", 5, "excellent"),
    ("Lindqvist", "Emma", "The key insight is additive updates with gating instead of multiplicative recurrence. In "
     "an RNN h_t = tanh(W h_{t-1} + U x_t), so the same W is applied at each step and gradients shrink or blow up. "
     "The LSTM cell state c_t = f_t * c_{t-1} + i_t * g_t is changed by addition, and when the forget gate is close "
     "to one the error signal passes through almost untouched.", 5, "excellent"),
    ("Nguyen", "Thi Lan", "RNNs fail because backprop through time multiplies by the same weight matrix many times, "
     "which makes gradients vanish (eigenvalues < 1) or explode. LSTMs fix this with a memory cell whose value is "
     "updated by adding gated contributions rather than overwriting it, and the forget gate can stay near 1 so both "
     "the information and the gradient are preserved.", 5, "excellent"),
    ("Schmidt", "Jonas", "Vanilla RNN: repeated multiplication by W at every step -> vanishing/exploding gradients "
     "over long sequences. LSTM: separate cell state, updated additively (f*c + i*g), gates decide what to keep and "
     "what to write. Forget gate ~1 = gradient highway, so long-range dependencies survive.", 5, "excellent"),
    ("Haddad", "Layla", "In a plain RNN the hidden state is pushed through the same matrix and the same tanh at every "
     "step. When you backpropagate, that product of many Jacobians goes to zero or blows up, so distant time steps "
     "get no learning signal. The LSTM keeps a second state, the cell state, which is updated by addition and "
     "controlled by forget and input gates. If the forget gate is near one, the cell state and its gradient are "
     "carried across many steps without being squashed.", 5, "excellent"),
    ("Rossi", "Giulia", "The problem with RNNs is multiplicative recurrence: the gradient is multiplied by the same "
     "weights at every step and decays exponentially. LSTMs introduce a cell state with gated additive updates, so "
     "the gradient can flow back through time along the cell state without repeated squashing.", 4.5, "excellent"),
    ("Kowalski", "Piotr", "RNNs apply the same transformation at each step, so the gradient is a long product of the "
     "same factors and it vanishes or explodes. An LSTM has a cell state that works like a conveyor belt: "
     "information is added to it or removed from it by gates instead of being rewritten every step, which keeps "
     "gradients alive for long ranges.", 4.5, "paraphrased"),
    ("Mensah", "Kwame", "Because the RNN keeps re-multiplying its state by one matrix, errors from far back fade away "
     "(or blow up) when training. The LSTM solves it with a memory line that is only added to, with gates choosing "
     "how much to forget and how much to write, so the signal can survive a long time.", 4, "paraphrased"),
    ("Fernández", "Lucía", "Long-range learning breaks in RNNs since the backpropagated error is scaled by the same "
     "recurrent weights at each time step, shrinking exponentially. LSTM cells carry a separate memory that is "
     "modified by addition under the control of gates; a forget gate close to 1 simply copies it forward, so "
     "gradients pass through.", 5, "paraphrased"),
    ("Tanaka", "Haruto", "The RNN state is overwritten every step by a matrix product and a squashing function, so "
     "old information and its gradient get squashed repeatedly. The LSTM adds to its cell state instead of "
     "overwriting it, and gates control this.", 3.5, "paraphrased"),
    ("O'Brien", "Siobhan", "RNN gradients vanish because they are multiplied many times by the recurrent matrix. "
     "LSTMs have gates.", 2, "partial"),
    ("Petrov", "Dmitri", "LSTMs have a cell state and three gates (input, forget, output) that control the flow of "
     "information, which lets them remember things for longer than a normal RNN.", 1.5, "partial"),
    ("Dubois", "Camille", "The vanilla RNN suffers from the vanishing gradient problem over long sequences, so it "
     "cannot learn long-range dependencies.", 1.5, "partial"),
    ("Ahmed", "Yusuf", "The LSTM's cell state is updated additively, so the gradient does not vanish. That is why it "
     "keeps long range dependencies.", 2, "partial"),
    ("Müller", "Lena", "In an RNN the gradient vanishes. The LSTM uses a forget gate which can be close to 1 so "
     "information is kept.", 2, "partial"),
    ("Silva", "Mateus", "RNNs repeatedly multiply by the weight matrix, which makes gradients explode or vanish. The "
     "LSTM avoids this somehow with its gates.", 2, "partial"),
    ("Kim", "Ji-woo", "Because of the gates. The forget gate decides what to throw away and the input gate decides "
     "what to store.", 1, "partial"),
    ("Brown", "Oliver", "- RNN: same weights every step, gradients vanish\n- LSTM: cell state + gates\n- cell "
     "state is additive", 3, "partial"),
    ("Ivanova", "Anastasia", "The vanishing gradient problem. LSTMs were designed by Hochreiter and Schmidhuber in "
     "1997 to fix it.", 1, "partial"),
    ("García", "Mateo", "RNNs forget because their hidden state is too small to hold long sequences; LSTMs have a "
     "bigger memory.", 0, "wrong"),
    ("Johansson", "Erik", "The RNN fails because it overfits on long sequences, and the LSTM uses dropout inside "
     "the cell to regularise it.", 0, "wrong"),
    ("Wilson", "Grace", "RNNs process every time step independently, so they never see earlier inputs. LSTMs feed "
     "the previous output back in.", 0, "wrong"),
    ("Chen", "Wei", "LSTMs are faster to train because they run in parallel over the sequence, unlike RNNs.", 0,
     "wrong"),
    ("Novak", "Tomas", "An RNN cannot handle sequences longer than its training window; the LSTM can.", 0.5, "wrong"),
    ("Papadopoulos", "Eleni", "LSTMs use attention to look directly at earlier time steps, so the distance does "
     "not matter, whereas the RNN has to pass everything through the hidden state.", 0, "misconception"),
    ("Singh", "Arjun", "Vanilla RNNs have too few parameters to capture distant patterns. The LSTM adds extra "
     "weight matrices for the gates, and more parameters let it model long-range dependencies.", 0,
     "misconception"),
    ("Moreau", "Léa", "The LSTM stores all past hidden states in a growing memory buffer and concatenates them, "
     "so nothing is forgotten.", 0, "misconception"),
    ("Andersson", "Maja", "RNN gradients vanish through repeated multiplication by W. LSTMs fix this because they "
     "attend to any past time step through attention over the cell states.", 1.5, "misconception"),
    ("Hoffmann", "Felix", "", 0, "blank"),
    ("Yilmaz", "Elif", "", 0, "blank"),
    ("Costa", "Beatriz", "idk", 0, "blank"),
    ("Murphy", "Liam", "Transformers have replaced both RNNs and LSTMs in most NLP systems since 2017, and GPT "
     "models are much better at language.", 0, "off-topic"),
    ("Sato", "Yuki", "Convolutional networks use shared filters over an image and pooling layers to reduce the "
     "resolution.", 0, "off-topic"),
    ("Kaur", "Simran", "I really enjoyed this module and the lab on sentiment analysis was very helpful!", 0,
     "off-topic"),
    ("Novák", "Petra", "additive updates with gating, multiplicative recurrence, cell state, forget gate, gradient "
     "highway", 2, "key phrase list"),
    ("Williams", "Ethan", "The RNN multiplies by the same weight matrix at every step so the gradients vanish or "
     "explode, while the LSTM's cell state is updated additively through gates, so the gradient can flow back.",
     5, "excellent"),
    ("Davies", "Chloe", "The RNN multiplies by the same weight matrix at every step so the gradients vanish or "
     "explode, while the LSTM's cell state is updated additively through gates, so the gradient can flow back.",
     5, "copied"),
    ("Jovanović", "Marko", "RNN = multiplicative recurrence → gradients vanish/explode.\nLSTM = additive cell-state "
     "update with forget/input gates → gradient highway when f≈1.", 5, "excellent"),
    ("Adeyemi", "Tolu", "The LSTM has a cell state. The RNN does not.", 1, "partial"),
    ("Larsen", "Freja", "Gradients in RNNs explode, which is why we use gradient clipping. LSTMs use clipping "
     "automatically.", 0, "wrong"),
    ("Rahman", "Nusrat", "Since the vanilla RNN squashes its state through tanh and the same weights at every step, "
     "the contribution of early inputs to the loss gradient decays geometrically. The LSTM's cell state is a "
     "running sum: new content is added through the input gate and old content is scaled by the forget gate, "
     "so with forget values near 1 the gradient is preserved.", 5, "paraphrased"),
    ("Bianchi", "Marco", "=SUM(A1:A9) the RNN gradient vanishes", 0.5, "wrong"),
    ("Fischer", "Anna", "LSTMs keep a separate cell state which is updated additively rather than multiplicatively. "
     "This way the information is not lost.", 2.5, "partial"),
    ("Lopez", "Diego", "RNNs don't fail, they just need more training data and a bigger hidden layer.", 0, "wrong"),
]

MC_ANSWERS = {"q1": ["B", "B", "B", "B", "A", "D", "B", "C", "B", "B"], "q2": ["B", "B", "B", "C", "B", "A", "B"]}


def main() -> None:
    rubric = yaml.safe_load(RUBRIC.read_text(encoding="utf-8"))
    qs = {q["id"]: q for q in rubric["questions"]}
    rng = random.Random(7)
    start = datetime(2025, 3, 14, 9, 0)
    wide_rows, grades = [], []
    for n, (surname, first, q5, q5_points, kind) in enumerate(Q5):
        email = f"{first.split()[0].lower()}.{surname.lower()}@student.example.edu"
        email = email.encode("ascii", "ignore").decode().replace("'", "")
        began = start + timedelta(minutes=rng.randint(0, 240), seconds=rng.randint(0, 59))
        took = timedelta(minutes=rng.randint(6, 38), seconds=rng.randint(0, 59))
        responses, points = {}, {}
        for qid in ("q1", "q2"):
            letter = rng.choice(MC_ANSWERS[qid])
            option = {o["id"]: o["text"] for o in qs[qid]["options"]}[letter]
            # Moodle writes the chosen option's text; a few attempts show only the letter, one is unanswered.
            responses[qid] = "-" if n == 29 and qid == "q2" else (letter if n % 9 == 4 else option)
            points[qid] = 1.0 if responses[qid] != "-" and letter in qs[qid]["correct"] else 0.0
        for qid in ("q3", "q4"):
            value = qs[qid]["correct"] if rng.random() < 0.75 else not qs[qid]["correct"]
            responses[qid] = "True" if value else "False"
            points[qid] = 1.0 if value == qs[qid]["correct"] else 0.0
        responses["q5"] = q5 if q5 else "-"
        points["q5"] = float(q5_points)
        wide_rows.append({
            "Surname": surname, "First name": first, "Email address": email, "State": "Finished",
            "Started on": began.strftime("%d %B %Y  %I:%M %p"),
            "Completed": (began + took).strftime("%d %B %Y  %I:%M %p"),
            "Time taken": f"{took.seconds // 60} mins {took.seconds % 60} secs",
            "Grade/9.00": "Not yet graded",  # the essay question awaits manual grading in Moodle
            **{f"Response {i}": responses[f"q{i}"] for i in range(1, 6)},
        })
        for qid in ("q1", "q2", "q3", "q4", "q5"):
            q = qs[qid]
            max_points = float(q.get("max_points", q.get("points", 1)))
            frac = points[qid] / max_points
            label = "correct" if frac >= 0.85 else "partially_correct" if frac > 0.15 else "incorrect"
            grades.append({
                "dataset": "rnn_lstm_example", "split": "test", "question_id": qid,
                "question": " ".join(q["prompt"].split()),
                "reference_answer": " ".join(q["reference_answers"][0].split()) if qid == "q5" else "",
                "student_id": email, "answer": "" if responses[qid] == "-" else responses[qid],
                "score": f"{points[qid]:g}", "max_score": f"{max_points:g}", "label": label,
                "score_a": "", "score_b": "", "score_c": "", "label_2way": "correct" if label == "correct" else
                "incorrect", "label_3way": label, "label_5way": "", "answer_id": f"{email}:{qid}",
            })
    with open(HERE / "moodle_responses.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(wide_rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(wide_rows)
    with open(HERE / "instructor_grades.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(grades[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(grades)
    print(f"wrote {len(wide_rows)} students and {len(grades)} graded answers")


if __name__ == "__main__":
    main()
