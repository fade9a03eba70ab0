"""The regression gate's answerability figure: a new index version must keep the base's "can we answer this?"
decisions as right as the active one does.

Registered in :data:`kb.regression_gate.GATE_CHECKS` at start-up (``chat.apps``), so kb imports nothing of
chat. The active version's fitted model scores the features each version gives: on the gate's in-base cases —
the held-out FAQ phrasings (each with its own index row left out, as the fit does) and the questions staff
confirmed — and on a fixed sample of the shipped out-of-base questions. Accuracy is the share that lands on
the right side of the model's threshold.

Not compared: a base without a fitted model, and a build that switches the embedding model — until it is
activated, the FAQ vectors in the database are the old model's, so its features would be measured wrong (the
switch is judged on nDCG@10, and its answerability model is refitted after activation).

Budget: features for ~2 × (cases + ``NEGATIVE_SAMPLE``) questions, a few seconds on 2 cores.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np

from chat.answerability_fit import examples_of, faq_questions, load_negatives, negative_questions
from chat.pipeline import answerability
from kb.regression_gate import GateCase, GateFigure
from kb.tuning import gate_held_out

NEGATIVE_SAMPLE = 60
SEED = 13


def answerability_accuracy(knowledge_base, *, candidate, active, cases: list[GateCase]) -> GateFigure | None:
    """Accuracy of the active model's decisions on each version's features, or None when not comparable."""
    model = answerability.model_for(knowledge_base.pk, active.version_id)
    if model is None or (candidate.embedding_model or "") != (active.embedding_model or ""):
        return None
    negatives = negative_sample()
    values = [decision_accuracy(model, knowledge_base, index, cases, negatives) for index in (candidate, active)]
    return GateFigure("answerability accuracy", round(values[0], 4), round(values[1], 4))


def negative_sample() -> list[str]:
    """The same out-of-base questions for every build (seeded), both languages as shipped."""
    rows = load_negatives()
    return [row["question"] for row in random.Random(SEED).sample(rows, min(NEGATIVE_SAMPLE, len(rows)))]


def decision_accuracy(model, knowledge_base, index, cases: list[GateCase], negatives: list[str]) -> float:
    """Share of the questions whose probability falls on the right side of the model's threshold."""
    untrained = gate_held_out(knowledge_base.pk)
    questions = [q for q in faq_questions(knowledge_base, index) if q.entry_id in untrained]
    confirmed = negative_questions(knowledge_base, index, [case.query for case in cases if case.include_faq])
    questions += [replace(q, in_base=True) for q in confirmed]  # embedded and searched alike
    questions += negative_questions(knowledge_base, index, negatives)
    examples = examples_of(knowledge_base, index, questions)
    if not examples:
        return 1.0
    matrix = np.stack([e.features.as_vector() for e in examples])  # (Q, F)
    right = (model.probabilities(matrix) >= model.threshold) == np.array([e.question.in_base for e in examples])
    return float(right.mean())
