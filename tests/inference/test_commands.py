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

    # then the table has the baseline and one row per level and load shape, with gain ratios
    table = out.getvalue()
    assert "| baseline generate |" in table and "| engine c=1 |" in table and "| engine c=2 |" in table
    assert "| engine c=1 sustained | 4 |" in table and "| engine c=2 sustained | 8 |" in table
    assert table.count("×") == 9  # a gain vs the baseline on each of 5 rows, vs engine c=1 on the 4 engine rows
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


def test_the_sustained_rows_compare_with_the_sustained_single_stream():
    from inference.benchmark import BenchRow, format_table

    # given wave and sustained rows at c=1 and c=8
    rows = [BenchRow("engine c=1", 1, 2, 90, 95, 20.0, 22.0, 40), BenchRow("engine c=8", 8, 16, 500, 900, 60.0, 9.0, 300),
            BenchRow("engine c=1 sustained", 1, 4, 90, 95, 25.0, 22.0, 80),
            BenchRow("engine c=8 sustained", 8, 32, 500, 900, 100.0, 9.0, 600)]
    # when the table is drawn without a baseline
    table = format_table(rows, None).splitlines()
    # then each c=8 row is divided by the c=1 row of its own load shape
    assert table[3].endswith("| — | 3.00× |")
    assert table[5].endswith("| — | 4.00× |")


def test_closed_loop_clients_send_their_next_request_after_the_previous_answer():
    from inference.benchmark import run_closed_loop
    from inference.handle import GenerationHandle, GenerationOutput
    from inference.params import SamplingParams

    # given an engine that answers at once and records the order of the requests it was sent
    class Recorder:
        def __init__(self):
            self.ids = []

        def submit(self, request):
            self.ids.append(request.request_id)
            handle = GenerationHandle(request)
            handle.finish(GenerationOutput(text="ok", finish_reason="stop", completion_tokens=1))
            return handle

    engine = Recorder()
    clients = [[({"role": "user", "content": f"q{c}{t}"},) for t in range(3)] for c in range(2)]
    # when two clients of three requests run
    outputs, seconds = run_closed_loop(engine, clients, SamplingParams(0.0, 1.0, 4), "t")
    # then every request was answered once, each client in order
    assert len(outputs) == 6 and seconds >= 0
    assert [i for i in engine.ids if i.startswith("t-0-")] == ["t-0-0", "t-0-1", "t-0-2"]
    assert sorted(engine.ids) == sorted(f"t-{c}-{t}" for c in range(2) for t in range(3))


def test_the_batching_ceiling_counts_each_prefill_in_full():
    from inference.benchmark import BenchRow, StepTimes, batching_ceiling, ceiling_lines

    # given a prefill of 470 ms and decode steps of 43 ms at batch 1 and 64 ms at batch 8, 60 tokens a request
    # then a full batch gains (470 + 60·43) / (470 + 60·64/8) = 3050 / 950 ≈ 3.21×, not 8·43/64 ≈ 5.4×
    ceiling = batching_ceiling(prefill_ms=470, step_1_ms=43, step_c_ms=64, concurrency=8, tokens=60)
    assert abs(ceiling - 3050 / 950) < 1e-9
    # and without prefill cost the ceiling is the decode phase's own gain
    assert abs(batching_ceiling(prefill_ms=0, step_1_ms=43, step_c_ms=64, concurrency=8, tokens=60) - 8 * 43 / 64) < 1e-9

    # when the bench's step listener saw steps of both sizes
    steps = StepTimes()
    for size, seconds in ((1, 0.043), (1, 0.043), (8, 0.064), (3, 0.050)):
        steps("step", batch_size=size, seconds=seconds)
    steps("first_token", ttft_s=0.4)
    rows = [BenchRow("engine c=1", 1, 2, 470, 480, 20.0, 22.0, 120), BenchRow("engine c=8", 8, 16, 900, 2000, 60.0, 9.0, 960)]
    # then one line reports the ceiling at c=8 from those figures
    assert ceiling_lines(rows, steps) == [
        "ceiling at c=8: 3.21× (prefill 470 ms, decode step 43.0 ms at batch 1 and 64.0 ms at batch 8, "
        "60 tokens a request)"]
