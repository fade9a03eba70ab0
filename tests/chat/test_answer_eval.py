"""answer_eval: per-question outcomes in both modes and the summary measures."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def write(tmp_path, rows):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    return path


def test_it_reports_both_modes_side_by_side(support_kb, tmp_path):
    from kb.models import FaqEntry

    FaqEntry.objects.filter(question__startswith="What are your opening").update(external_id="hours")
    path = write(tmp_path, [
        {"question": "What are your opening hours?", "expect": "in_base", "faq_id": "hours"},
        {"question": "How deep is the borehole for a heat pump?", "expect": "in_base", "faq_id": ""},
        {"question": "Who won the football match yesterday?", "expect": "out_of_base"},
    ])
    out = StringIO()
    call_command("answer_eval", support_kb.slug, "--questions", str(path), stdout=out)
    text = out.getvalue()
    lines = text.splitlines()
    assert any("direct ✓" in line and "opening hours" in line for line in lines)
    assert any(line.startswith("direct-answer precision") and "1.000 (1/1)" in line for line in lines)
    assert any(line.startswith("out-of-base refused") and "1.000 (1/1)" in line for line in lines)
    row = next(line for line in lines if "borehole" in line)
    assert "generate" in row and ("extract" in row or "refused" in row)


def test_a_missing_file_or_bad_label_is_a_clear_error(support_kb, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("answer_eval", support_kb.slug, "--questions", str(tmp_path / "none.jsonl"))
    path = write(tmp_path, [{"question": "q", "expect": "maybe"}])
    with pytest.raises(CommandError, match="in_base or out_of_base"):
        call_command("answer_eval", support_kb.slug, "--questions", str(path))


def test_the_shipped_evaluation_file_names_real_zaragoza_entries():
    from pathlib import Path

    import zaragoza_construction_faq

    ids = {row["id"] for row in zaragoza_construction_faq.load(lang="en")}
    path = Path(__file__).resolve().parents[2] / "chat" / "data" / "eval" / "zaragoza.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    in_base = [row for row in rows if row["expect"] == "in_base"]
    assert len(in_base) >= 30 and len(rows) - len(in_base) >= 15
    assert all(row["faq_id"] in ids for row in in_base)
    questions = {row["q"] for row in zaragoza_construction_faq.load(lang="en")}
    assert not questions & {row["question"] for row in rows}  # paraphrases, not copies
