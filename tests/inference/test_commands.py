"""The ``generate`` and ``inference_bench`` management commands, run for real on small settings."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.slow


@pytest.mark.django_db(transaction=True)
def test_generate_streams_an_answer_to_stdout(settings):
    # given embedded settings with the bundled model
    settings.REDIS_URL, settings.KEFU_MODE, settings.KEFU_MODEL = None, "embedded", "smollm2-135m"
    out, err = io.StringIO(), io.StringIO()

    # when a prompt is generated through the job queue path
    call_command("generate", "What is the capital of France?", "--max-new-tokens", "6", "--temperature", "0",
                 "--queue", stdout=out, stderr=err)

    # then the answer is printed and a summary with the token counts follows on stderr
    assert out.getvalue().strip()
    assert "prompt +" in err.getvalue() and "new tokens" in err.getvalue()


def test_generate_refuses_out_of_range_parameters():
    with pytest.raises(CommandError, match="temperature"):
        call_command("generate", "hi", "--temperature", "3")


def test_inference_bench_prints_a_table_with_baseline_and_gain():
    # when the benchmark runs tiny: a tiny MoE model, two concurrency levels, one round, prompts longer than
    # the prefill budget (a request joining a running one is prefilled in chunks)
    out, err = io.StringIO(), io.StringIO()
    call_command("inference_bench", "--model", "tiny-mixtral", "--concurrency", "1,2", "--rounds", "1",
                 "--prompt-tokens", "40", "--max-new-tokens", "4", "--baseline-requests", "1",
                 "--prefill-budget", "16", stdout=out, stderr=err)

    # then the table has the baseline and one row per level, with a gain ratio
    table = out.getvalue()
    assert "| baseline generate |" in table and "| engine c=1 |" in table and "| engine c=2 |" in table
    assert table.count("×") == 5  # a gain vs the baseline on each of 3 rows, vs engine c=1 on the 2 engine rows
    assert "max RSS" in err.getvalue()


def test_inference_bench_agreement_compares_int8_with_fp32():
    out = io.StringIO()
    call_command("inference_bench", "--model", "tiny-mixtral", "--agreement", "int8", "--max-new-tokens", "3",
                 stdout=out, stderr=io.StringIO())
    assert "int8 vs fp32, greedy, 8 questions" in out.getvalue() and "identical answers" in out.getvalue()


def test_the_bench_table_shows_the_gain_over_one_engine_stream():
    from inference.benchmark import BenchRow, format_table

    baseline = BenchRow("baseline generate", 1, 2, 100, 110, 10.0, 12.0, 20)
    rows = [BenchRow("engine c=1", 1, 2, 90, 95, 20.0, 22.0, 40), BenchRow("engine c=8", 8, 16, 500, 900, 70.0, 9.0, 300)]
    table = format_table(rows, baseline).splitlines()
    assert table[0].endswith("| gain vs baseline | vs engine c=1 |")
    assert table[2] == "| baseline generate | 2 | 100 | 110 | 10.0 | 12.0 | 1.00× | — |"
    assert table[4] == "| engine c=8 | 16 | 500 | 900 | 70.0 | 9.0 | 7.00× | 3.50× |"
