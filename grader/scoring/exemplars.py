"""What a question's own graded examples say about an answer's wording.

An instructor who has graded a few dozen answers to a question has shown, besides
what the model answer says, how students who earn each grade word it: the terms,
the misspellings, the phrasings the encoder does not place near the reference.
:class:`ExampleModel` learns that from the examples alone, when the question is
prepared (nothing is saved or loaded back):

* with :data:`MIN_FIT` examples or more over at least two grades, regularised
  logistic regressions over the examples' character n-grams (word-bounded, 2 to 5
  characters: robust to spelling and inflection, any language), their sentence
  vectors and, when the caller gives them, the answers' own signals against the
  model answer (standardised over the examples, weighted :data:`SIGNAL_WEIGHT`)
  predict a distribution over the grades seen. The signals let each question weigh
  them its own way: how much of the model answer a correct answer to *this* question
  covers, how long it is (1.3 to 2.0 points of accuracy on SAF, measured per question
  over two fold partitions). Grades are ordered, so the
  model is cumulative: one regression per step between grades ("at least partly
  correct", "correct"), each learning from every example (a multinomial model
  would learn "partly correct" from those examples alone; 0.6 to 0.8 points of
  accuracy on SAF, measured per question). Grades beyond :data:`MAX_BINS` distinct
  levels (an averaged score) are pooled into that many bins of about equal counts.
  The signals are its expected grade and its chances of the top and of the
  bottom grade (bin);
* with fewer, the same three come from the lexically nearest examples, weighted
  by their character n-gram cosine.

The combiner learns how far to trust the signal at each number of examples
(training simulates instructors with 0, 5, 20 and all other answers graded).
"""

from __future__ import annotations

import numpy as np

MIN_FIT = 10  # examples needed (over two grades or more) to fit the classifier
C = 10.0  # inverse regularisation of the classifier; n-gram weights are tf-idf scaled
NEAREST = 7  # examples averaged by the nearest-example fallback
MAX_FEATURES = 50_000  # n-gram vocabulary bound per question (memory and time per answer)
NGRAMS = (2, 5)
MAX_BINS = 6  # grade bins of the cumulative model at most: one regression per step between two bins
SIGNAL_WEIGHT = 0.3  # scale of the standardised signals beside the unit-norm n-gram rows and sentence vectors
MAX_Z = 5.0  # standard deviations from the examples' mean beyond which a signal reads no further


class ExampleModel:
    """Expected grade of an answer from the wording of a question's graded examples (see module doc)."""

    def __init__(self, texts: list[str], fractions, vectors: np.ndarray, signals: np.ndarray | None = None) -> None:
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.fractions = np.asarray(fractions, dtype=np.float64)
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, lowercase=True,
                                          max_features=MAX_FEATURES, dtype=np.float32)
        self.matrix = self.vectorizer.fit_transform(texts).tocsc()  # columns: an answer's n-grams
        self._analyze = self.vectorizer.build_analyzer()
        self._vocabulary = self.vectorizer.vocabulary_
        self._idf = self.vectorizer.idf_.astype(np.float64)
        grades = np.round(self.fractions, 6)
        self.levels = np.unique(grades)
        self.steps = 0  # fitted step regressions; 0: the nearest examples answer
        self._signal_mean = self._signal_scale = None  # standardisation of the signals, when fitted with them
        if fits(len(texts), self.fractions):
            from sklearn.linear_model import LogisticRegression

            bins = _bins(grades, self.levels)
            # The grade each bin stands for: its examples' mean.
            self.class_fractions = np.array([self.fractions[bins == b].mean() for b in range(bins.max() + 1)])
            dense = [vectors]
            if signals is not None and len(signals):
                signals = np.asarray(signals, dtype=np.float64)
                self._signal_mean = signals.mean(axis=0)
                self._signal_scale = signals.std(axis=0) + 1e-6
                dense.append(self._standard(signals))
            inputs = sparse.hstack([self.matrix, sparse.csr_matrix(np.hstack(dense))], format="csr")
            # One regression per step: the chance of a bin above it. Only the weights are kept: grading applies
            # them itself (a sparse dot product), as scikit-learn's per-call checks cost several times the
            # arithmetic for one answer.
            models = [LogisticRegression(C=C, max_iter=1000).fit(inputs, bins >= step)
                      for step in range(1, len(self.class_fractions))]
            coef = np.vstack([m.coef_ for m in models])
            n, dim = self.matrix.shape[1], vectors.shape[1]
            self._ngram_coef, self._vector_coef, self._signal_coef = coef[:, :n], coef[:, n:n + dim], coef[:, n + dim:]
            self._intercept = np.array([m.intercept_[0] for m in models])
            self.steps = len(models)

    @property
    def reads_signals(self) -> bool:
        """Whether the fitted model reads an answer's signals (then :meth:`predict` needs them)."""
        return bool(self.steps) and self._signal_mean is not None

    def _standard(self, signals: np.ndarray) -> np.ndarray:
        """Signals as the regressions read them: z-scores over the examples, bounded at :data:`MAX_Z` (a signal
        all examples share, or nearly, has no spread to scale an answer's difference by), times
        :data:`SIGNAL_WEIGHT`."""
        return np.clip((signals - self._signal_mean) / self._signal_scale, -MAX_Z, MAX_Z) * SIGNAL_WEIGHT

    def bin_probabilities(self, cols: np.ndarray, values: np.ndarray, vector: np.ndarray,
                          signals: np.ndarray | None = None) -> np.ndarray:
        """The fitted model's chance of each grade bin for an answer's tf-idf row (``cols``, ``values``),
        sentence vector and (for a model fitted with them) signals: differences of the steps' chances, made to
        fall with the step."""
        logits = self._ngram_coef[:, cols] @ values + self._vector_coef @ vector + self._intercept
        if self.reads_signals:
            if signals is None:
                raise ValueError("this examples' model was fitted with the answers' signals: give them")
            logits = logits + self._signal_coef @ self._standard(np.asarray(signals, dtype=np.float64))
        above = np.minimum.accumulate(1.0 / (1.0 + np.exp(-logits)))
        return -np.diff(np.concatenate([[1.0], above, [0.0]]))

    def _row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of ``text``'s tf-idf row, as the fitted vectorizer computes it."""
        counts: dict[int, int] = {}
        for gram in self._analyze(text):
            col = self._vocabulary.get(gram)
            if col is not None:
                counts[col] = counts.get(col, 0) + 1
        if not counts:
            return np.zeros(0, int), np.zeros(0)
        cols = np.fromiter(counts, dtype=int, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self._idf[cols]
        return cols, values / np.linalg.norm(values)

    @classmethod
    def of(cls, texts: list[str], fractions, vectors: np.ndarray,
           signals: np.ndarray | None = None) -> "ExampleModel | None":
        """The model of these examples (``vectors``: their unit sentence vectors; ``signals``: optionally, their
        signals, one row each, in the order :meth:`predict` will be given them), or None without any example
        that has a word character."""
        if not texts or not any(t.strip() for t in texts):
            return None
        try:
            return cls(texts, fractions, vectors, signals)
        except ValueError:  # no n-gram at all (punctuation only)
            return None

    def predict(self, text: str, vector: np.ndarray, exclude: int | None = None,
                signals: np.ndarray | None = None) -> tuple[float, float, float]:
        """(expected grade fraction, chance of the top grade, chance of the bottom grade) of ``text`` (``vector``:
        its unit sentence vector; ``signals``: its signals, as the examples' were given); ``exclude`` (an
        example's index) grades an example by the others (the classifier has seen it, so the nearest-example
        rule answers)."""
        cols, values = self._row(text)
        if self.steps and exclude is None:
            p = self.bin_probabilities(cols, values, vector, signals)
            return float(p @ self.class_fractions), float(p[-1]), float(p[0])
        sims = self.matrix[:, cols] @ values
        fractions = self.fractions
        if exclude is not None:
            keep = np.arange(len(sims)) != exclude
            sims, fractions = sims[keep], fractions[keep]
        if not len(sims):
            return 0.0, 0.0, 0.0
        order = np.argsort(-sims, kind="stable")[:NEAREST]
        weights = sims[order] + 1e-6
        weights = weights / weights.sum()
        near = fractions[order]
        return (float(weights @ near), float(weights @ (near >= self.levels[-1] - 1e-6)),
                float(weights @ (near <= self.levels[0] + 1e-6)))

    def nbytes(self) -> int:
        """Memory held: the examples' n-gram matrix, the vocabulary and the classifier's weights."""
        total = self.matrix.data.nbytes + self.matrix.indices.nbytes + self.matrix.indptr.nbytes
        total += sum(len(k) * 2 + 64 for k in self.vectorizer.vocabulary_)
        if self.steps:
            total += self._ngram_coef.nbytes + self._vector_coef.nbytes + self._signal_coef.nbytes
        return total


def fits(count: int, fractions) -> bool:
    """Whether ``count`` examples with these grade fractions fit the step regressions (else the nearest examples
    answer): :data:`MIN_FIT` of them or more, over two grades or more."""
    return count >= MIN_FIT and len(np.unique(np.round(np.asarray(fractions, dtype=np.float64), 6))) >= 2


def _bins(grades: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each example's grade bin: its level's rank, or with more than :data:`MAX_BINS` levels, bins of about
    equal counts whose edges fall between levels."""
    rank = np.searchsorted(levels, grades)
    if len(levels) <= MAX_BINS:
        return rank
    below = np.cumsum(np.bincount(rank, minlength=len(levels)))[:-1]  # examples at or below each level
    targets = len(grades) * np.arange(1, MAX_BINS) / MAX_BINS
    edges = np.unique([int(np.abs(below - t).argmin()) for t in targets])  # a bin ends at each edge level
    return np.searchsorted(edges, rank, side="left")
