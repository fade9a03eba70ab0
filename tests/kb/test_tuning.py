"""Tuning a base's embedder: the pairs it learns from, the folds, a short real run that writes an artifact and
decides adoption, the command's errors and the KB page's button."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from kb.models import KnowledgeBase, TuningRun
from kb.tuning import Pair, TuningConfig, fold_split, training_pairs, tuning_run, tuning_start
from tests.conftest import staff_member
from tests.kb.tiny_models import DIMENSION

FAQ = [
    ("What are your opening hours?", "We are open from nine to five on weekdays.", ["When are you open?"]),
    ("Do you ship abroad?", "We ship to every country in the European Union.", []),
    ("How do I return an item?", "Print the return label from your account and drop the parcel at a post office.", []),
    ("Can I pay by invoice?", "Business customers can pay by invoice within thirty days.", []),
    ("Is there a warranty?", "Every appliance has a two-year warranty against manufacturing faults.", []),
    ("How long does delivery take?", "Orders arrive within three working days.", []),
    ("Do you have gift cards?", "Gift cards from ten to five hundred euros are sold in every shop.", []),
    ("Can I change my order?", "Orders can be changed until they are packed, usually within two hours.", []),
    ("Where is your warehouse?", "Our warehouse is in Zaragoza, next to the motorway exit.", []),
    ("Do you recycle packaging?", "All boxes are made of recycled cardboard and can be returned to the driver.", []),
]
QUICK = TuningConfig(epochs=1, batch_size=4, min_items=4)


@pytest.fixture
def tiny_model(tiny_registered):
    """A tiny model registered as "tiny-a", the base model tuning starts from."""
    return tiny_registered


@pytest.fixture
def faq_kb(db, tiny_model, ingest):
    """A small indexed base on the tiny model: ten FAQ entries and a document with sections."""
    from kb.indexing import index_build
    from kb.services import faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name="Shop", chunk_size=64, chunk_overlap=8, embedding_model=tiny_model)
    for question, answer, alternatives in FAQ:
        faq_entry_create(knowledge_base=kb, question=question, answer=answer, alternatives=alternatives,
                         rebuild=False)
    ingest(kb, "care.md", b"# Product care\n\n## Cleaning\n\nWipe the surface with a damp cloth.\n\n"
                          b"## Storage\n\nKeep the device in a dry place.")
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    return kb


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(staff_member("staff", password="pw-12345"))
    return client


# ---------------------------------------------------------------------------- pairs and folds


def test_the_pairs_are_the_bases_own_faq_and_section_labels(faq_kb):
    pairs = training_pairs(faq_kb.pk, QUICK)
    by_query = {}
    for pair in pairs:
        by_query.setdefault(pair.query, set()).add(pair.target)
    # every phrasing points at its answer, an alternative also at its question
    assert "We are open from nine to five on weekdays." in by_query["When are you open?"]
    assert "What are your opening hours?" in by_query["When are you open?"]
    # headings point at their section's text
    assert any("damp cloth" in target for target in by_query["Cleaning"])
    assert any("dry place" in target for target in by_query["Product care: Storage"])
    assert any("damp cloth" in target for target in by_query["care"])  # the title → the opening text
    # no pair twice, and the FAQ pairs are the evaluated ones
    assert len({(p.query, p.target) for p in pairs}) == len(pairs)
    assert {p.item for p in pairs if p.from_faq} == {f"faq:{e.pk}" for e in faq_kb.faq_entries.all()}


def test_folds_split_items_in_two_disjoint_halves_the_same_way_each_time():
    items = [f"faq:{n}" for n in range(11)]
    first, second = fold_split(items, seed=13)
    assert first.isdisjoint(second) and first | second == set(items) and abs(len(first) - len(second)) <= 1
    assert fold_split(items, seed=13) == (first, second)


def test_every_pair_is_in_one_batch_per_epoch_and_batches_group_similar_lengths():
    from kb.tuning import epoch_batches

    pairs = [Pair(f"q{n}", "x" * (n * 7 % 50 + 1), f"faq:{n}", True) for n in range(50)]
    batches = epoch_batches(pairs, TuningConfig(epochs=2, batch_size=8))
    counts = Counter(pair for batch in batches for pair in batch)
    assert set(counts.values()) == {2} and len(counts) == 50 and all(1 < len(b) <= 8 for b in batches)
    spread = [max(len(p.target) for p in b) - min(len(p.target) for p in b) for b in batches]
    assert sum(spread) / len(spread) < 25  # a random batch of 8 spans ~40 characters here


def test_pairs_of_one_item_are_not_each_others_negatives(tiny_model, db):
    import torch

    from kb.tuning import train_step, training_model

    # given a batch where two pairs share an item and one other pair is unrelated
    model = training_model(tiny_model, QUICK)
    batch = [Pair("q1", "answer one", "faq:1", True), Pair("q1 again", "answer one, longer", "faq:1", True),
             Pair("q2", "answer two", "faq:2", True)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    # when one step runs (lr 0: nothing changes)
    loss = train_step(model, optimizer, schedule, batch, QUICK)
    # then the loss is finite (each row keeps its own target and the unrelated one as its only negative)
    assert np.isfinite(loss) and loss >= 0


def test_a_hard_negative_is_a_near_target_of_another_item_never_a_shared_one():
    from dataclasses import replace

    from kb.tuning import with_hard_negatives

    # given three FAQ items and a heading pair; item 2's answer lies nearest item 1's question, the shared text
    # (an answer two items both point at) nearer still
    pairs = [Pair("q1", "a1", "faq:1", True), Pair("q2", "a2", "faq:2", True), Pair("q3", "a3", "faq:3", True),
             Pair("q1", "shared", "faq:1", True), Pair("q3", "shared", "faq:3", True),
             Pair("Heading", "a3", "faq:3", False)]
    targets = {"a1": np.array([1.0, 0.0, 0.0]), "a2": np.array([0.9, 0.1, 0.0]), "a3": np.array([0.0, 0.0, 1.0]),
               "shared": np.array([1.0, 0.0, 0.0])}
    queries = {"q1": np.array([1.0, 0.0, 0.0]), "q2": np.array([0.0, 1.0, 0.0]), "q3": np.array([0.0, 0.0, 1.0])}
    # when negatives are mined one deep
    mined = with_hard_negatives(pairs, targets, queries, replace(TuningConfig(), hard_negatives=True,
                                                                 hard_negative_depth=1))
    # then q1's is item 2's answer (not its own, not the shared text), every FAQ pair has one of another item,
    # and the heading pair has none; switched off, nothing changes
    assert (mined[0].negative, mined[0].negative_item) == ("a2", "faq:2")
    assert all(p.negative and p.negative_item != p.item and p.negative != "shared" for p in mined[:5])
    assert mined[5] == pairs[5]
    assert with_hard_negatives(pairs, targets, queries, replace(TuningConfig(), hard_negatives=False)) == pairs


def test_a_hard_negative_adds_to_the_loss_unless_it_belongs_to_the_rows_own_item(tiny_model, db):
    import torch

    from kb.tuning import train_step, training_model

    model = training_model(tiny_model, QUICK)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    plain = [Pair("q1", "answer one", "faq:1", True)]

    def loss(batch):  # lr 0: the model never changes
        return train_step(model.eval(), optimizer, schedule, batch, QUICK)

    model.train = lambda mode=True: model  # no dropout: the losses compare exactly
    # given one pair alone (nothing to tell apart: no loss), with a negative of another item, and with one of its
    # own item (another text of the same FAQ entry)
    other = [Pair("q1", "answer one", "faq:1", True, "answer three", "faq:3")]
    own = [Pair("q1", "answer one", "faq:1", True, "answer one, longer", "faq:1")]
    # then another item's negative makes a loss and the own item's is masked out
    assert loss(plain) < 1e-6
    assert loss(other) > 1e-4
    assert loss(own) < 1e-6


def test_the_saved_weights_lie_between_the_start_and_the_trained_ones_by_the_tuned_share(tiny_model, db):
    from dataclasses import replace

    from kb.tuning import train_model, training_model

    # given the start model and the same short training kept whole and kept at half
    start = training_model(tiny_model, QUICK).state_dict()
    pairs = [Pair(q, a, f"faq:{n}", True) for n, (q, a, _) in enumerate(FAQ)]
    whole = train_model(tiny_model, pairs, replace(QUICK, tuned_share=1.0), lambda *_: None).state_dict()
    half = train_model(tiny_model, pairs, replace(QUICK, tuned_share=0.5), lambda *_: None).state_dict()
    # then every trained weight of the half model is the midpoint, and training did move some
    moved = [name for name, value in start.items() if value.is_floating_point() and not value.equal(whole[name])]
    assert moved
    for name in moved:
        assert np.allclose(half[name].numpy(), ((start[name] + whole[name]) / 2).numpy(), atol=1e-6), name


def test_texts_are_encoded_longest_first_but_returned_in_their_own_order(tiny_model, db):
    from kb.tuning import encode, training_model

    # given texts of very different lengths, in no order of length
    model = training_model(tiny_model, QUICK)
    texts = ["short", "a much longer text " * 8, "mid length text here", "x", "another long one " * 5]
    # when they are encoded two at a time (batched by length) and one by one
    together = encode(model, texts, batch_size=2)
    alone = np.concatenate([encode(model, [text]) for text in texts])
    # then each row is its own text's vector
    assert together.shape == (len(texts), DIMENSION)
    assert np.allclose(together, alone, atol=1e-5)


def test_the_soup_is_the_element_wise_mean_of_the_fold_models():
    import torch

    from kb.tuning import weights_average

    # given two fold models' weights and an integer buffer they share
    first = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1])}
    second = {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([0, 1])}
    # when they are averaged
    soup = weights_average([first, second])
    # then floats are the mean and integers are kept
    assert soup["w"].tolist() == [2.0, 4.0] and soup["ids"].tolist() == [0, 1]


def test_an_unknown_final_model_is_refused():
    from kb.tuning import souped

    with pytest.raises(ValueError, match="soup or retrain"):
        souped(TuningConfig(final="mix"))
    # LoRA never soups: averaging each factor is not averaging the update
    assert not souped(TuningConfig(method="lora")) and souped(TuningConfig())


class ReindexStopped(Exception):
    """Raised where a tuning run would re-embed the base: the test has what it needs by then."""


def stop_before_reindexing(**kwargs):
    raise ReindexStopped


@pytest.mark.parametrize(("final", "trainings"), [("soup", 2), ("retrain", 3)])
def test_the_adopted_model_is_the_fold_models_average_or_one_more_training(faq_kb, monkeypatch, final, trainings):
    import torch

    import kb.tuning
    from kb.tuning import knowledge_base_tune

    # given a run that records every model it trains and the weights each ends with
    trained = []
    real_train = kb.tuning.train_model

    def recording(*args, **kwargs):
        model = real_train(*args, **kwargs)
        trained.append({name: value.detach().clone() for name, value in model.state_dict().items()})
        return model

    monkeypatch.setattr(kb.tuning, "train_model", recording)
    saved = {}
    monkeypatch.setattr(kb.tuning, "artifact_save", lambda model, **kwargs: saved.update(model.state_dict()) or "x")
    monkeypatch.setattr(kb.tuning, "model_adopt", stop_before_reindexing)
    config = TuningConfig(epochs=1, batch_size=4, min_items=4, min_gain=-1.0, final=final)
    # when it measures both folds and reaches adoption
    with pytest.raises(ReindexStopped):
        knowledge_base_tune(knowledge_base=faq_kb, config=config)
    # then the soup trains twice and saves the mean of the two fold models; retrain trains a third model and
    # saves that one
    assert len(trained) == trainings
    expected = ({name: (trained[0][name] + trained[1][name]) / 2 for name in trained[0]} if final == "soup"
                else trained[2])
    floats = [name for name, value in expected.items() if value.is_floating_point()]
    assert floats and all(torch.allclose(saved[name].float(), expected[name].float(), atol=1e-6) for name in floats)


# ---------------------------------------------------------------------------- a real, short run


def test_a_short_tuning_run_writes_an_artifact_and_adopts_it_through_a_new_index_version(faq_kb):
    from kb.embedding import model_hash, model_source

    # given a queued run and a rule that adopts any gain
    run = tuning_start(knowledge_base=faq_kb, enqueue=False)
    old_version = faq_kb.active_index
    # when it runs (1 epoch, batches of 4: seconds)
    run = tuning_run(run_id=run.pk, config=TuningConfig(epochs=1, batch_size=4, min_items=4, min_gain=-1.0))
    faq_kb.refresh_from_db()
    # then it is recorded as done and adopted, with both folds measured
    assert run.status == "done" and run.adopted and run.progress == 100, run.error_message
    assert len(run.folds) == 2 and all(0 <= f["before"] <= 1 and 0 <= f["after"] <= 1 for f in run.folds)
    assert run.gain == pytest.approx(sum(f["after"] - f["before"] for f in run.folds) / 2, abs=1e-3)
    assert run.pair_count > len(FAQ) and run.seconds > 0 and run.base_model == "tiny-a"
    # and the artifact is in the data dir, named by its hash, and the base serves from a new version made with it
    name = run.tuned_model
    assert name.startswith(f"tuned:{faq_kb.slug}:") and faq_kb.embedding_model == name
    source = model_source(name)
    assert source.path.is_dir() and json.loads((source.path / "kefu-tuned.json").read_text())["parent"] == "tiny-a"
    version = faq_kb.active_index
    assert version.number == old_version.number + 1
    assert version.embedding_model == name and version.embedding_hash == model_hash(name)
    assert all(len(bytes(e.embeddings)) == 4 * DIMENSION * len(e.phrasings) for e in faq_kb.faq_entries.all())


def test_a_run_below_the_gain_needed_changes_nothing(faq_kb, settings):
    run = tuning_start(knowledge_base=faq_kb, enqueue=False)
    run = tuning_run(run_id=run.pk, config=TuningConfig(epochs=1, batch_size=4, min_items=4, min_gain=1.0))
    faq_kb.refresh_from_db()
    assert run.status == "done" and not run.adopted and "1.00 is needed" in run.reason
    assert faq_kb.embedding_model == "tiny-a" and not run.tuned_model
    assert not (settings.KEFU_DATA_DIR / "models").exists()


def test_a_base_with_too_few_pairs_is_not_tuned(db, tiny_model):
    from kb.services import faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name="Tiny", embedding_model=tiny_model)
    faq_entry_create(knowledge_base=kb, question="Hours?", answer="Nine to five.", rebuild=False)
    run = tuning_run(run_id=tuning_start(knowledge_base=kb, enqueue=False).pk)
    assert run.status == "done" and not run.adopted and "Too few labelled pairs" in run.reason


def test_a_second_run_while_one_is_active_is_refused(faq_kb):
    from kb.tuning import TuningRejected

    tuning_start(knowledge_base=faq_kb, enqueue=False)
    with pytest.raises(TuningRejected, match="already queued or running"):
        tuning_start(knowledge_base=faq_kb, enqueue=False)
    assert TuningRun.objects.filter(knowledge_base=faq_kb).count() == 1


# ---------------------------------------------------------------------------- command and page


def test_the_command_refuses_bad_input_with_a_clear_error(faq_kb):
    with pytest.raises(CommandError, match="No knowledge base"):
        call_command("kb_tune", "no-such-base")
    with pytest.raises(CommandError, match="--epochs must be at least 1"):
        call_command("kb_tune", faq_kb.slug, "--epochs", "0")
    with pytest.raises(CommandError, match="not to --enqueue"):
        call_command("kb_tune", faq_kb.slug, "--enqueue", "--measure-only")
    tuning_start(knowledge_base=faq_kb, enqueue=False)
    with pytest.raises(CommandError, match="already queued or running"):
        call_command("kb_tune", faq_kb.slug)
    assert TuningRun.objects.filter(knowledge_base=faq_kb).count() == 1


def test_the_button_starts_a_run_on_the_ingest_queue_for_staff_only(faq_kb, staff, client, django_user_model,
                                                                     monkeypatch, django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr("kb.tuning.tuning_enqueue", enqueued.append)
    url = reverse("kb:tune", args=[faq_kb.slug])
    # a GET starts nothing
    assert staff.get(url).status_code == 405
    # staff POST: one queued run, enqueued on commit, shown on the page and in the progress JSON
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url)
    run = TuningRun.objects.get(knowledge_base=faq_kb)
    assert response.status_code == 302 and enqueued == [run.pk] and run.status == "queued"
    page = staff.get(reverse("kb:detail", args=[faq_kb.slug])).content.decode()
    assert "Tune the embedder on this base" in page and f'data-run="{run.pk}"' in page
    progress = staff.get(reverse("kb:tuning_progress", args=[faq_kb.slug])).json()
    assert progress["runs"][0]["id"] == run.pk and progress["runs"][0]["status"] == "queued"
    # a second POST while it is queued is refused with a message, nothing added
    staff.post(url)
    assert TuningRun.objects.filter(knowledge_base=faq_kb).count() == 1
    # a signed-in customer (no staff role) is refused and starts nothing
    client.force_login(django_user_model.objects.create_user("customer", password="pw-12345"))
    assert client.post(url).status_code == 403
    assert TuningRun.objects.filter(knowledge_base=faq_kb).count() == 1
    assert KnowledgeBase.objects.get(pk=faq_kb.pk).embedding_model == "tiny-a"


def test_a_lora_run_stores_only_the_adapter_and_the_tuned_model_loads_merged(faq_kb):
    pytest.importorskip("peft")
    from kb.embedding import embed_query, model_source

    # given a LoRA run that adopts any gain
    run = tuning_start(knowledge_base=faq_kb, enqueue=False, method="lora")
    run = tuning_run(run_id=run.pk, config=TuningConfig(epochs=1, batch_size=4, min_items=4, min_gain=-1.0))
    faq_kb.refresh_from_db()
    # then the artifact is the adapter and its manifest (its parent's weights are not copied) ...
    assert run.status == "done" and run.adopted and run.method == "lora", run.error_message
    source = model_source(run.tuned_model)
    assert source.parent == "tiny-a" and (source.adapter / "adapter_config.json").is_file()
    assert not (source.path / "model.safetensors").exists()
    # ... and the base's model is the parent with the adapter merged in: same size, other vectors
    tuned = embed_query("Do you ship abroad?", model=run.tuned_model)
    parent = embed_query("Do you ship abroad?", model="tiny-a")
    assert tuned.shape == parent.shape == (DIMENSION,) and not np.allclose(tuned, parent, atol=1e-4)
    assert faq_kb.embedding_model == run.tuned_model == faq_kb.active_index.embedding_model


def test_a_full_run_saves_a_whole_model_in_half_precision(faq_kb):
    from safetensors import safe_open

    from kb.embedding import model_source

    run = tuning_run(run_id=tuning_start(knowledge_base=faq_kb, enqueue=False).pk,
                     config=TuningConfig(epochs=1, batch_size=4, min_items=4, min_gain=-1.0))
    path = model_source(run.tuned_model).path
    with safe_open(str(path / "model.safetensors"), "pt") as weights:
        dtypes = {str(weights.get_tensor(name).dtype) for name in weights.keys()}  # noqa: SIM118 - safe_open is not a dict
    assert dtypes == {"torch.float16"}
    assert json.loads((path / "kefu-tuned.json").read_text())["method"] == "full"


def test_a_tuned_model_the_regression_gate_holds_back_is_not_adopted(faq_kb, monkeypatch):
    from kb import regression_gate

    # given a gate that finds the tuned model's index worse on the base's evaluation set
    def worse(knowledge_base, *, candidate, active):
        return regression_gate.GateReport(12, 0.5, 0.8, False, "nDCG@10 0.500 against 0.800")

    monkeypatch.setattr(regression_gate, "version_gate", worse)
    # when a run with a gain is done
    run = tuning_run(run_id=tuning_start(knowledge_base=faq_kb, enqueue=False).pk,
                     config=TuningConfig(epochs=1, batch_size=4, min_items=4, min_gain=-1.0))
    faq_kb.refresh_from_db()
    # then the base keeps its model and version; the run says why, and names the artifact for "activate anyway"
    assert run.status == "done" and not run.adopted and "regression gate held" in run.reason
    assert faq_kb.embedding_model == "tiny-a" and faq_kb.active_index.embedding_model == "tiny-a"
    held = faq_kb.index_versions.get(status="held")
    assert held.embedding_model == run.tuned_model


def test_the_regression_gates_held_out_entries_are_never_trained_on(faq_kb):
    from kb.regression_gate import HELD_OUT_EVERY
    from kb.services import document_upload, faq_entry_create

    # given FAQ entries with source documents, some of them in the gate's held-out fold (every fifth id)
    for n in range(HELD_OUT_EVERY):
        upload = document_upload(knowledge_base=faq_kb, filename=f"s{n}.txt", data=f"Source text {n}.".encode(),
                                 enqueue=False).document
        upload.chunk_count, upload.status = 1, "ready"
        upload.save()
        upload.chunks.create(ordinal=0, text=f"Source text number {n} about the topic.", embedding=b"")
        faq_entry_create(knowledge_base=faq_kb, question=f"Sourced question {n}?", answer=f"Sourced answer {n}.",
                         source_document=upload, rebuild=False)
    held = [e for e in faq_kb.faq_entries.filter(source_document__isnull=False) if e.pk % HELD_OUT_EVERY == 0]
    assert held
    # when the tuning collects its pairs
    pairs = training_pairs(faq_kb.pk, QUICK)
    # then no held-out question, answer or source text is among them
    texts = {p.query for p in pairs} | {p.target for p in pairs}
    for entry in held:
        assert entry.question not in texts and entry.answer not in texts
        assert not any(entry.source_document.chunks.get().text in text for text in texts)
    assert any(p.query.startswith("Sourced question") for p in pairs)  # the others are used


def test_the_command_runs_the_job_here_and_reports_the_folds(transactional_db, faq_kb):
    from io import StringIO

    from kefu.background import drain

    out = StringIO()
    call_command("kb_tune", faq_kb.slug, "--measure-only", "--epochs", "1", stdout=out)
    drain()  # committed index builds enqueued follow-up work (answerability fits): let it end before teardown
    run = TuningRun.objects.get(knowledge_base=faq_kb)
    assert run.status == "done" and not run.adopted and len(run.folds) == 2
    assert "fold 1:" in out.getvalue() and "fold 2:" in out.getvalue() and run.reason in out.getvalue()
    assert KnowledgeBase.objects.get(pk=faq_kb.pk).embedding_model == "tiny-a"


def test_the_same_weights_trained_the_same_way_get_the_same_name_whenever_they_are_saved(faq_kb, tiny_model):
    import copy

    from kb.embedding import get_embedder, tuned_model_dir
    from kb.tuning import artifact_save

    # given one model saved twice, the second time with other figures (and so another creation time)
    def save(figures: dict, config: TuningConfig = QUICK) -> str:
        return artifact_save(copy.deepcopy(get_embedder(tiny_model)), knowledge_base=faq_kb, parent=tiny_model,
                             config=config, figures=figures)

    first = save({"gain": 0.031, "seconds": 107})
    second = save({"gain": 0.031, "seconds": 131})
    # then both saves name one artifact, stored once
    assert first == second
    folders = list(tuned_model_dir(faq_kb.slug, "0" * 12).parent.iterdir())
    assert len(folders) == 1
    # and another training configuration is another model
    assert save({"gain": 0.031}, TuningConfig(epochs=2, batch_size=4, min_items=4)) != first
