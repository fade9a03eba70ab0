"""Answerability: the calibrator on synthetic data, features from a real small base, the fit, the decision,
the stored probability, the index-activation → fit path and the command."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from chat import answerability_fit as fitting
from chat.pipeline import answerability, decide
from chat.pipeline.answerability import Score
from chat.pipeline.intent import Intent
from kb.retrieval.fusion import Ranked
from kb.retrieval.search import Hit

# A handful of the shipped out-of-base questions keep the fits in these tests to seconds.
NEGATIVES = [row["question"] for row in fitting.load_negatives()][::4]


# ---------------------------------------------------------------- the calibrator, on synthetic data


def synthetic(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two features; the true model is p = sigmoid(2·x0 − 1·x1 + 0.5)."""
    x = rng.normal(size=(n, 2))
    p = answerability.sigmoid(x @ np.array([2.0, -1.0]) + 0.5)
    return x, rng.random(n) < p


def test_logistic_fit_recovers_a_known_separation_and_is_calibrated_on_held_out_data():
    # given data drawn from a known logistic model
    rng = np.random.default_rng(1)
    x, y = synthetic(6000, rng)
    # when fitted (unweighted, weak penalty)
    coef, intercept = answerability.logistic_fit(x, y, l2=0.01, balanced=False)
    # then the weights are the true ones
    assert coef == pytest.approx([2.0, -1.0], abs=0.15) and intercept == pytest.approx(0.5, abs=0.1)
    # and on fresh data each well-filled bin predicts what happens
    x_new, y_new = synthetic(6000, rng)
    predicted = answerability.sigmoid(x_new @ coef + intercept)
    rows = answerability.reliability_table(zip(predicted, y_new, strict=True))
    filled = [row for row in rows if row.count >= 200]
    assert len(filled) >= 6
    assert all(abs(row.mean_predicted - row.observed_rate) < 0.06 for row in filled)


def test_balanced_weights_put_the_decision_boundary_between_the_classes_whatever_their_sizes():
    # given 50 positives around +2 and 500 negatives around -2 on one feature
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(2, 1, 50), rng.normal(-2, 1, 500)])[:, None]
    y = np.concatenate([np.ones(50, bool), np.zeros(500, bool)])
    # when fitted with balanced classes
    coef, intercept = answerability.logistic_fit(x, y, l2=0.01)
    # then p = 0.5 sits near the midpoint 0, not pushed towards the positives
    assert abs(-intercept / coef[0]) < 0.35


def test_the_threshold_is_the_lowest_that_refuses_95_percent_of_out_of_base_scores():
    # given 100 out-of-base scores 0.00 … 0.99 and four in-base ones
    negative = np.arange(100) / 100
    positive = np.array([0.3, 0.955, 0.97, 0.99])
    # when
    threshold = answerability.refusal_threshold(negative, positive, refusal=0.95)
    # then 95 of 100 out-of-base are refused, and any lower threshold refuses fewer
    assert (negative < threshold).mean() >= 0.95
    assert (negative < 0.94).mean() < 0.95
    assert 0.94 < threshold < 0.95  # halfway to the next score: in-base 0.955 passes
    assert (positive < threshold).sum() == 1


def test_the_threshold_with_too_few_out_of_base_scores_to_spare_any_refuses_them_all():
    threshold = answerability.refusal_threshold(np.array([0.2, 0.4, 0.6]), np.array([0.9]), refusal=0.95)
    assert 0.6 < threshold <= 0.9


def test_reliability_table_bins_pairs_by_prediction():
    rows = answerability.reliability_table([(0.05, False), (0.08, True), (0.95, True), (1.0, True)], bins=10)
    assert len(rows) == 10
    assert (rows[0].count, rows[0].mean_predicted, rows[0].observed_rate) == (2, pytest.approx(0.065), 0.5)
    assert rows[9].count == 2 and rows[9].observed_rate == 1.0  # 1.0 falls in the last bin
    assert rows[5].count == 0 and rows[5].mean_predicted is None and rows[5].observed_rate is None


def test_a_model_survives_its_json_and_an_outdated_one_is_ignored():
    model = answerability.AnswerabilityModel(
        knowledge_base_id=1, index_version_id=2, feature_names=answerability.FEATURE_NAMES,
        mean=(0.0,) * len(answerability.FEATURE_NAMES), scale=(1.0,) * len(answerability.FEATURE_NAMES),
        coef=(0.5,) * len(answerability.FEATURE_NAMES), intercept=-1.0, threshold=0.4)
    assert answerability.AnswerabilityModel.from_json(model.to_json()) == model
    stale = model.to_json().replace(f'"schema": {answerability.SCHEMA}', '"schema": 0')
    assert stale != model.to_json()
    assert answerability.AnswerabilityModel.from_json(stale) is None


def test_a_model_fitted_for_older_features_is_refitted_once_while_the_rules_serve(data_dir, monkeypatch):
    # given a model file of schema 0 for base 1, version 2 (an upgrade changed the features)
    from kefu import background

    answerability.forget_models()
    queued = []
    monkeypatch.setattr(background, "enqueue", lambda task, *args, **kwargs: queued.append((task, args, kwargs)))
    model = answerability.AnswerabilityModel(
        knowledge_base_id=1, index_version_id=2, feature_names=answerability.FEATURE_NAMES,
        mean=(0.0,) * len(answerability.FEATURE_NAMES), scale=(1.0,) * len(answerability.FEATURE_NAMES),
        coef=(0.5,) * len(answerability.FEATURE_NAMES), intercept=-1.0, threshold=0.4, schema=0)
    path = answerability.model_path(1, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model.to_json(), encoding="utf-8")
    # when the version's model is asked for, twice (the second after the recheck interval)
    first = answerability.model_for(1, 2)
    answerability._fallbacks.clear()
    second = answerability.model_for(1, 2)
    # then no model serves (the rules do) and one fit of that version is queued on the ingest queue
    assert first is None and second is None
    assert queued == [("chat.answerability_fit", (1, 2), {"queue": "ingest"})]


# ---------------------------------------------------------------- the decision


def chunk_hit(cosine: float) -> Hit:
    return Hit(chunk_id=1, document_id=1, text="Drilling needs a permit.", score=0.03, document_title="Manual",
               page=None, heading_path="", found_by={"dense": Ranked(1, cosine), "bm25": Ranked(1, 4.0)})


def faq_hit(similarity: float) -> Hit:
    return Hit(chunk_id=None, document_id=None, text="q\na", score=0.03, document_title="FAQ", page=None,
               heading_path="", found_by={"dense": Ranked(1, similarity)}, faq_entry_id=7,
               faq_question="When are you open?", faq_answer="Weekdays 8 to 17.", similarity=similarity)


def decide_with(hits, score):
    return decide.answer_decide(intent=Intent("knowledge", 0.9), hits=hits, direct_threshold=0.85,
                                relevance_floor=0.35, extractive=False, question="Do I need a permit?",
                                answerability=score)


def test_a_probability_below_the_bases_threshold_is_refused_as_unanswerable():
    decision = decide_with([chunk_hit(0.7)], Score(probability=0.2, threshold=0.5))
    assert (decision.action, decision.reason) == (decide.REFUSE, "unanswerable")


def test_a_probability_at_the_threshold_goes_on_to_the_passages():
    assert decide_with([chunk_hit(0.7)], Score(probability=0.5, threshold=0.5)).action == decide.GENERATE


def test_a_direct_faq_answer_over_the_direct_threshold_wins_over_a_low_probability():
    assert decide_with([faq_hit(0.93)], Score(probability=0.1, threshold=0.5)).action == decide.DIRECT


def test_an_out_of_scope_intent_is_refused_whatever_the_probability():
    decision = decide.answer_decide(intent=Intent("out_of_scope", 0.9), hits=[chunk_hit(0.7)], direct_threshold=0.85,
                                    relevance_floor=0.35, extractive=False, question="Who painted the Mona Lisa?",
                                    answerability=Score(probability=0.9, threshold=0.5))
    assert (decision.action, decision.reason) == (decide.REFUSE, "out_of_scope")


def test_without_a_model_the_relevance_floor_rules_as_before():
    assert decide_with([chunk_hit(0.7)], None).action == decide.GENERATE
    assert decide_with([chunk_hit(0.2)], None).reason == "no_relevant_passage"


# ---------------------------------------------------------------- features from a real small base


def features_for(kb, question: str):
    from chat.pipeline.intent import intent_classify
    from kb.embedding import embed_query
    from kb.search import active_index, analyze, hybrid, term_profile

    vector = embed_query(question)
    hits = hybrid(kb, question, kb.top_k, query_vector=vector)
    profile = term_profile(active_index(kb.pk), analyze(question))
    found = intent_classify(text=question, query_vector=vector, kb_id=kb.pk, index_version=kb.active_index_id)
    off_topic = answerability.off_topic_similarity(vector, answerability.reference_vectors(active_index(kb.pk)))
    return answerability.features_of(hits=hits, intent=found, support=0.0, bm25_ceiling=profile.ceiling,
                                     term_coverage=profile.coverage, off_topic=off_topic)


def test_features_from_real_hits_tell_an_in_base_question_from_an_out_of_base_one(support_kb):
    inside = features_for(support_kb, "Do I need a permit to drill for a heat pump?")
    outside = features_for(support_kb, "How many kilos of checked baggage are included in an economy ticket?")
    assert inside.dense_top > outside.dense_top + 0.2
    assert inside.term_coverage > outside.term_coverage
    assert outside.off_topic > inside.off_topic + 0.1  # the shipped set holds airline questions, none on drilling
    assert 0 < inside.bm25_top <= 1 and 0 <= outside.bm25_top <= 1
    assert inside.agreement in (0.0, 0.5, 1.0) and inside.agreement >= outside.agreement
    assert inside.intent_faq + inside.intent_knowledge + inside.intent_out_of_scope <= 1


def test_a_held_out_faq_phrasing_does_not_find_itself(support_kb):
    # given the base's own question "What are your opening hours?" (alternative: "When are you open?")
    from kb.search import active_index, term_profile

    index = active_index(support_kb.pk)
    question = next(q for q in fitting.positive_questions(support_kb, index) if q.text == "What are your opening hours?")
    # when its hits are computed with its own row held out
    hits = fitting.heldout_hits(support_kb, index, question)
    entry_hit = next(h for h in hits if h.faq_entry_id == question.entry_id)
    # then its entry is still found through the alternative, at the alternative's similarity, not 1.0
    assert entry_hit.similarity == pytest.approx(float(question.other_phrasings[0] @ question.vector), abs=1e-5)
    assert entry_hit.similarity < 0.99
    # and the BM25 ceiling and coverage ignore the held-out row's words
    alone = term_profile(index, ["hour"], exclude=question.excluded_rows)
    with_it = term_profile(index, ["hour"])
    assert with_it.coverage == 1.0 and alone.coverage == 0.0


# ---------------------------------------------------------------- the fit, storage and use


def test_the_fit_stores_a_model_that_meets_the_refusal_rule_on_held_out_data(support_kb):
    model = fitting.answerability_fit(knowledge_base_id=support_kb.pk, negatives=NEGATIVES)
    assert model.positives == 2 * (4 + 2)  # three questions, one alternative, two section headings; each led in too
    assert model.negatives >= len(NEGATIVES) - 5
    assert model.heldout_refusal >= 0.95
    path = answerability.model_path(support_kb.pk, support_kb.active_index_id)
    assert path.is_file()
    answerability.forget_models()
    assert answerability.model_for(support_kb.pk, support_kb.active_index_id) == model  # read back


def test_every_question_is_asked_again_after_a_lead_in_of_its_own_language():
    from chat.answerability_fit import LEAD_INS_EN, LEAD_INS_ZH, led_in

    # given English and Chinese questions
    texts = ["How long is a building permit valid?", "退货需要多长时间？", "Can I get ROT for a heat pump?"]
    # when they are led in
    led = led_in(texts)
    # then each keeps its words after one lead-in of its language, the same ones every time
    assert led == led_in(texts)
    for text, question in zip(texts, led, strict=True):
        leads = LEAD_INS_ZH if text == "退货需要多长时间？" else LEAD_INS_EN
        lead = next(lead for lead in leads if question.startswith(lead))
        assert question[len(lead):].lower() == text.lower()


def test_the_fit_asks_both_classes_plain_and_led_in(support_kb, monkeypatch):
    from chat import answerability_fit as fit_module

    # given a fit that records the questions it asks
    asked = []
    real = fit_module.examples_of
    monkeypatch.setattr(fit_module, "examples_of", lambda kb, index, questions: asked.extend(questions)
                        or real(kb, index, questions))
    # when it runs
    fitting.answerability_fit(knowledge_base_id=support_kb.pk, negatives=NEGATIVES)
    # then every in-base and every out-of-base question is asked twice, the second time after a lead-in, holding out
    # the same rows
    plain = {q.text: q for q in asked if not q.text.startswith(fit_module.LEAD_INS_EN + fit_module.LEAD_INS_ZH)}
    led = [q for q in asked if q.text.startswith(fit_module.LEAD_INS_EN + fit_module.LEAD_INS_ZH)]
    assert len(led) == len(plain) == len(asked) // 2
    assert sum(q.in_base for q in led) == sum(q.in_base for q in plain.values()) == 4 + 2
    for question in led:
        twin = next(p for text, p in plain.items() if question.text.lower().endswith(text.lower()))
        assert question.in_base == twin.in_base and question.excluded_rows.tolist() == twin.excluded_rows.tolist()


def test_a_base_with_too_few_faq_questions_is_not_fitted(db, embedder):
    from tests.chat.conftest import FAQ, build_support_kb

    kb = build_support_kb("Tiny")
    from kb.models import Chunk, FaqEntry

    FaqEntry.objects.filter(knowledge_base=kb).exclude(question=FAQ[1][0]).delete()
    Chunk.objects.filter(document__knowledge_base=kb).update(heading_path="")
    with pytest.raises(fitting.AnswerabilityFitError, match="at least 3"):
        fitting.answerability_fit(knowledge_base_id=kb.pk, negatives=NEGATIVES)


def test_a_base_of_documents_only_learns_from_its_section_headings(db, embedder):
    # given a base whose only document has sections, and no FAQ entries
    from kb.indexing import active_index, index_build
    from kb.ingestion import document_ingest
    from kb.services import document_upload, knowledge_base_create

    kb = knowledge_base_create(name="Manual", chunk_size=64, chunk_overlap=8)
    text = "".join(f"# {title}\n\n{body}\n\n" for title, body in (
        ("Heat pumps", "A ground source heat pump needs a drilling permit from the municipality."),
        ("Roofing", "A tiled roof lasts about 50 years. Metal roofs need repainting every 15 years."),
        ("Opening hours", "We are open Monday to Friday, 8:00 to 17:00."),
        ("FAQ", "Ask us anything."),
    ))
    document_ingest(document_id=document_upload(knowledge_base=kb, filename="m.md", data=text.encode(),
                                                enqueue=False).document.pk)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    # when its positives are gathered, then they are its headings (too short ones left out), each holding out
    # its own heading row (a heading asked as it is would find itself)
    from kb.indexing import ROW_HEADING

    index = active_index(kb.pk)
    questions = fitting.positive_questions(kb, index)
    assert sorted(q.text for q in questions) == ["Heat pumps", "Opening hours", "Roofing"]
    for question in questions:
        (row,) = question.excluded_rows.tolist()
        assert index.rows.kinds[row] == ROW_HEADING
    assert len({q.excluded_rows[0] for q in questions}) == 3
    # and the base is fitted from them
    assert fitting.answerability_fit(knowledge_base_id=kb.pk, negatives=NEGATIVES).positives == 2 * 3


def test_a_reply_stores_its_probability_once_the_base_has_a_model(widget_key, fake_generator):
    from chat.models import Message
    from chat.services import message_answer

    def ask(text):
        started = message_answer(widget_key=widget_key, conversation=None, text=text)
        return Message.objects.get(pk=started.message_id)

    # given no model yet: the rules decide and nothing is stored
    before = ask("Do I need a permit to drill for a heat pump?")
    assert before.answerability is None
    # when the base is fitted
    fitting.answerability_fit(knowledge_base_id=widget_key.knowledge_base_id, negatives=NEGATIVES)
    # then an in-base answer and an out-of-base refusal both carry a probability, the latter the lower
    inside = ask("What paperwork is needed before drilling a borehole for heating?")
    outside = ask("My suitcase did not arrive at the carousel, where do I report it?")
    assert inside.outcome in ("pending", "answered") and 0 <= inside.answerability <= 1, inside.outcome
    assert outside.outcome == "refused" and outside.answerability is not None
    assert outside.answerability < inside.answerability
    # and a direct FAQ answer is not scored: the decision never needs it (and it costs a sentence-embedding pass)
    direct = ask("When are you open?")
    assert direct.outcome == "direct" and direct.answerability is None


def test_a_low_probability_refuses_a_question_the_rules_would_have_answered(widget_key, fake_generator):
    from chat.models import Message
    from chat.services import message_answer

    kb = widget_key.knowledge_base
    model = fitting.answerability_fit(knowledge_base_id=kb.pk, negatives=NEGATIVES)
    # given a threshold no question reaches
    answerability.model_save(answerability.AnswerabilityModel(**{**model.__dict__, "threshold": 1.01}))
    # when a question the passages answer is asked
    started = message_answer(widget_key=widget_key, conversation=None,
                             text="Do I need a permit to drill for a heat pump?")
    reply = Message.objects.get(pk=started.message_id)
    # then it is refused as unanswerable, with its probability stored
    assert (reply.outcome, reply.reason) == ("refused", "unanswerable") and reply.answerability < 1.01
    assert fake_generator.requests == []


@pytest.mark.django_db(transaction=True)
def test_an_index_activation_fits_the_model_in_the_background(settings, embedder, monkeypatch):
    # given embedded mode and a small base (its first build activates v1 → one background fit)
    from kb.indexing import index_build
    from kefu import background
    from tests.chat.conftest import build_support_kb

    settings.KEFU_MODE = "embedded"
    monkeypatch.setattr(fitting, "load_negatives", lambda: [{"question": q} for q in NEGATIVES])
    kb = build_support_kb("Fitted")
    # when the index is built again
    version = index_build(knowledge_base_id=kb.pk)
    background.drain(timeout=300)
    # then the new active version has its model on disk, fitted on the ingest queue's thread
    assert answerability.model_path(kb.pk, version.pk).is_file()
    assert answerability.model_for(kb.pk, version.pk).index_version_id == version.pk


def test_a_new_version_is_served_by_the_previous_model_until_its_own_fit(support_kb):
    # given a model of the first version
    from kb.indexing import index_build

    first = fitting.answerability_fit(knowledge_base_id=support_kb.pk, negatives=NEGATIVES)
    # when a rebuild activates a second one whose fit has not run (its on_commit never fires in this test)
    second = index_build(knowledge_base_id=support_kb.pk)
    # then the first model serves it, and its own model replaces it once fitted
    assert answerability.model_for(support_kb.pk, second.pk) == first
    refit = fitting.answerability_fit(knowledge_base_id=support_kb.pk, negatives=NEGATIVES)
    assert refit.index_version_id == second.pk
    assert answerability.model_for(support_kb.pk, second.pk) == refit


def test_a_version_no_longer_active_is_not_fitted(support_kb):
    assert fitting.answerability_fit(knowledge_base_id=support_kb.pk, index_version_id=support_kb.active_index_id + 99,
                                     negatives=NEGATIVES) is None


# ---------------------------------------------------------------- the command


def test_the_command_fits_and_reports(support_kb, monkeypatch, capsys):
    monkeypatch.setattr(fitting, "load_negatives", lambda: [{"question": q} for q in NEGATIVES])
    call_command("answerability_fit", support_kb.slug)
    out = capsys.readouterr().out
    assert "threshold" in out and "out-of-base refused" in out
    assert answerability.model_path(support_kb.pk, support_kb.active_index_id).is_file()


def test_the_command_names_an_unknown_base(db):
    with pytest.raises(CommandError, match="no knowledge base 'nope'"):
        call_command("answerability_fit", "nope")


def test_the_command_refuses_a_base_without_an_index(db):
    from kb.services import knowledge_base_create

    knowledge_base_create(name="Empty")
    with pytest.raises(CommandError, match="no active index"):
        call_command("answerability_fit", "empty")


def test_the_shipped_out_of_base_set_is_large_varied_and_bilingual():
    rows = fitting.load_negatives()
    assert len(rows) >= 300 and sum(row["lang"] == "zh" for row in rows) >= 100
    assert len({row["domain"] for row in rows}) >= 15
    assert len({row["question"] for row in rows}) == len(rows)


def test_on_a_tuned_embedder_only_the_untrained_held_out_fold_teaches_what_in_base_looks_like(db, embedder):
    # given a base whose FAQ answers come from documents, so the regression gate holds out every fifth entry
    from dataclasses import replace

    from chat.answerability_fit import positive_questions
    from kb.indexing import active_index, index_build
    from kb.ingestion import document_ingest
    from kb.services import document_upload, faq_entry_create, knowledge_base_create
    from kb.tuning import gate_held_out

    kb = knowledge_base_create(name="Shop", chunk_size=64, chunk_overlap=8)
    for i in range(16):
        upload = document_upload(knowledge_base=kb, filename=f"topic-{i}.md", enqueue=False,
                                 data=f"# Topic {i}\n\nPolicy number {i} says item {i} ships in {i + 1} days.".encode())
        document = document_ingest(document_id=upload.document.pk)
        faq_entry_create(knowledge_base=kb, question=f"When does item {i} ship?", answer=f"In {i + 1} days.",
                         source_document=document, rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    index = active_index(kb.pk)
    untrained = gate_held_out(kb.pk)
    assert len(untrained) >= 3
    # when positives are chosen for the bundled embedder, every phrasing and heading counts
    everything = positive_questions(kb, index)
    assert {q.entry_id for q in everything if q.entry_id} == set(kb.faq_entries.values_list("id", flat=True))
    # and for a tuned one (trained on all the other entries), only the held-out fold does
    tuned = replace(index, embedding_model="tuned:shop:0123456789ab")
    assert {q.entry_id for q in positive_questions(kb, tuned)} == untrained


def test_a_held_out_heading_does_not_meet_its_own_title_in_the_intent_classifier():
    # given a classifier whose knowledge examples are a base's section titles
    from chat.pipeline.intent import IntentClassifier

    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    classifier = IntentClassifier(vectors, ["chitchat", "out_of_scope", "knowledge"],
                                  ["hello there", "what is the weather", "Opening hours"])
    question = fitting.Question("Opening hours", np.array([0.6, 0.8], dtype=np.float32), in_base=True,
                                excluded_rows=np.zeros(0, dtype=np.int64))
    # when the fit asks the heading itself, then its own title is not there to answer it
    assert classifier.classify(question.text, question.vector).label == "knowledge"
    assert fitting.heldout_intent(classifier, question).label == "out_of_scope"


def test_a_shipped_question_is_scored_off_topic_without_its_own_domain(embedder):
    # given one of the shipped out-of-base questions
    from kb.embedding import embed_query

    rows = answerability.reference_rows()
    asked = rows[0]
    vector = embed_query(asked["question"])
    references = np.asarray(embedding_of([row["question"] for row in rows]), dtype=np.float32)
    # when its domain is left out
    mask = answerability.reference_domain_mask(asked["question"])
    # then the mask is exactly its domain, and its own copy no longer counts as its neighbour
    assert mask.sum() == sum(row["domain"] == asked["domain"] for row in rows) and mask[0]
    assert answerability.off_topic_similarity(vector, references, leave_out=mask) < \
        answerability.off_topic_similarity(vector, references)
    assert answerability.reference_domain_mask("A question of this base, not a shipped one") is None


def embedding_of(texts):
    from kb.embedding import embed_texts

    return embed_texts(texts)


def test_questions_staff_confirmed_are_positives_asked_against_the_whole_index(support_kb):
    from chat.answerability_fit import positive_questions
    from kb.indexing import active_index
    from kb.models import Document, FaqEntry
    from kb.services import eval_case_record

    # given a resolved thumbs-down (a customer's own words, right source named), a gap wording that is an FAQ
    # alternative already, and a case repeating an FAQ question
    document = Document.objects.get(knowledge_base=support_kb)
    story = "We got a heat pump last year and now want another borehole, does the drilling need a permit again?"
    eval_case_record(knowledge_base=support_kb, question=story, origin="feedback", document=document)
    entry = FaqEntry.objects.get(knowledge_base=support_kb, question="What are your opening hours?")
    eval_case_record(knowledge_base=support_kb, question="When are you open?", origin="gap", faq_entry=entry)
    eval_case_record(knowledge_base=support_kb, question="what are your opening hours?", origin="staff",
                     faq_entry=entry)
    # when the fit gathers its positives
    positives = positive_questions(support_kb, active_index(support_kb.pk))
    # then the story is one of them, asked against the whole index; the copies of phrasings are not added again
    confirmed = [q for q in positives if q.text == story]
    assert len(confirmed) == 1 and confirmed[0].in_base and confirmed[0].excluded_rows.size == 0
    assert len(positives) == 4 + 2 + 1
    assert fitting.answerability_fit(knowledge_base_id=support_kb.pk, negatives=NEGATIVES).positives == 2 * 7
