"""deploy/prometheus/alerts.yml: valid rules, and every metric (and label) they name is on Kefu's real /metrics.

The rules' expressions are read with a small PromQL tokenizer (strings, label matchers, range
brackets and durations are tokens of their own; a name followed by ``(`` is a function and must
be a PromQL one; the label lists of ``by``/``without``/``on``/``ignoring``/``group_*`` are skipped).
The scrape comes after the code paths that create the labelled series ran for real: questions
answered (direct, from the cache, failed by the generator), a server error, the hand-off and
ingestion gauges read from the database. ``promtool`` (Debian package ``prometheus``) checks
the file's syntax and runs the rule unit tests in ``alerts.test.yml`` when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from django.urls import path

from analytics.views import prometheus_metrics

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
PROMETHEUS_OWN = {"up"}  # synthesised by Prometheus for every scrape target, not exported by anyone
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                "count_values", "group"}
FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "histogram_quantile",
             "abs", "absent", "absent_over_time", "avg_over_time", "min_over_time", "max_over_time",
             "sum_over_time", "count_over_time", "quantile_over_time", "changes", "resets", "clamp_min",
             "clamp_max", "clamp", "time", "vector", "scalar", "label_replace", "label_join", "round", "ceil",
             "floor", "sort", "sort_desc", "timestamp"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<matchers>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>,])
  | (?P<space>\s+)
""", re.VERBOSE)
MATCHER = re.compile(r"""\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?""")


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def tokens(expr: str) -> list[tuple[str, str]]:
    found, at = [], 0
    while at < len(expr):
        match = TOKEN.match(expr, at)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[at:at + 20]!r}")
        if match.lastgroup != "space":
            found.append((match.lastgroup, match.group()))
        at = match.end()
    return found


def matchers_of(text: str) -> tuple[tuple[str, str, str], ...]:
    inside, parsed = text[1:-1], []
    at = 0
    while inside[at:].strip():
        match = MATCHER.match(inside, at)
        if match is None:
            raise ValueError(f"cannot read label matchers {text!r}")
        parsed.append(match.groups())
        at = match.end()
    return tuple(parsed)


def selectors(expr: str) -> list[Selector]:
    """The metric selectors of one PromQL expression; unknown functions are an error."""
    found: list[Selector] = []
    items = tokens(expr)
    index = 0
    while index < len(items):
        kind, text = items[index]
        following = items[index + 1] if index + 1 < len(items) else ("", "")
        if kind == "name" and text in LABEL_LISTS and following[0] == "open":
            index = items.index(("close", ")"), index) + 1  # the label list
            continue
        if kind == "name" and text in AGGREGATIONS and following[1] in ("by", "without"):
            pass  # an aggregation whose grouping comes first: sum by (le) (...)
        elif kind == "name" and following[0] == "open" and text not in KEYWORDS:
            if text not in AGGREGATIONS | FUNCTIONS:
                raise ValueError(f"{text}() is not a PromQL function")
        elif kind == "name" and text not in KEYWORDS:
            found.append(Selector(text, matchers_of(following[1]) if following[0] == "matchers" else ()))
        elif kind == "matchers" and (index == 0 or items[index - 1][0] != "name"):
            raise ValueError(f"a selector without a metric name: {text}")
        index += 1
    return found


def alert_rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_tokenizer_finds_metrics_and_their_matchers_only():
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1", y=~"b|c"}[5m] offset 1d))) '
            '/ on (instance) group_left b > bool 0.5 and max without (pid) (c:rule) unless d{z!="5m"}')
    assert selectors(expr) == [Selector("a_bucket", (("x", "=", "1"), ("y", "=~", "b|c"))), Selector("b", ()),
                               Selector("c:rule", ()), Selector("d", (("z", "!=", "5m"),))]
    with pytest.raises(ValueError, match="not a PromQL function"):
        selectors("rates(a[5m])")


def test_the_rules_file_has_the_shape_prometheus_loads():
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names)) and all(group["rules"] for group in document["groups"])
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert rule["labels"]["severity"] in {"page", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert "for" not in rule or re.fullmatch(r"(\d+[smhd])+", rule["for"])
        assert selectors(rule["expr"]), rule["alert"]


def test_the_rules_cover_what_an_operator_is_paged_for():
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    latency = by_name["KefuEndToEndLatencyP99High"]
    assert "histogram_quantile(0.99" in latency["expr"] and "> 0.5" in latency["expr"] and latency["for"] == "5m"
    assert "> 0.01" in by_name["KefuAnswerErrorRateHigh"]["expr"]
    gpu = by_name["KefuGpuMemoryHigh"]
    assert "kefu_gpu_memory_used_ratio" in gpu["expr"] and "> 0.9" in gpu["expr"] and gpu["for"] == "5m"
    assert {"KefuInferenceQueueGrowing", "KefuGenerationBacklogGrowing", "KefuIngestionFailures",
            "KefuGeneratorDown", "KefuCacheHitRateCollapsed"} <= set(by_name)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "alerts.test.yml"], cwd=RULES_DIR, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def boom(request):
    raise RuntimeError("a server error, on purpose")


urlpatterns = [path("metrics", prometheus_metrics, name="metrics"), path("boom", boom, name="boom")]


def faq_base():
    from chat.models import WidgetKey
    from kb.indexing import index_build
    from kb.services import faq_entries_embed, faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name="Alerts shop")
    faq_entry_create(knowledge_base=kb, question="What are your opening hours?",
                     answer="Monday to Friday, 8:00 to 17:00.", alternatives=[], rebuild=False)
    faq_entries_embed(knowledge_base_id=kb.pk)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    return WidgetKey.objects.create(knowledge_base=kb, name="site")


def exercise_the_series() -> None:
    """Run, for real, the code paths that create the labelled series the rules name."""
    from django.test import Client
    from django.utils import timezone

    from analytics.rollups import rollup_refresh
    from chat.services import message_answer, message_finalize
    from inference.stream import StreamEvent
    from tests.analytics import seed

    key = faq_base()
    for question in ("What are your opening hours?", "what are your opening hours"):  # direct, then cached
        message_answer(widget_key=key, conversation=None, text=question)
    conv = seed.conversation(key.knowledge_base, at=timezone.now(), status="handed_off")
    _, pending = seed.exchange(conv, at=timezone.now(), outcome="pending")
    message_finalize(message=pending, event=StreamEvent("1-0", "error", {"code": "worker_lost"}))
    assert Client(raise_request_exception=False).get("/boom").status_code == 500
    rollup_refresh()


@dataclass(frozen=True)
class Sample:
    metric: str
    labels: dict


def scraped(text: str) -> list[Sample]:
    samples = []
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$", line)
        if match:
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples.append(Sample(match.group(1), labels))
    return samples


@pytest.mark.urls(__name__)
def test_every_metric_and_label_the_rules_name_is_exported(client, db, embedder, settings):
    # given the code paths behind the rules' series have run
    exercise_the_series()
    # when /metrics is scraped as Prometheus scrapes it
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = scraped(response.content.decode())
    # then every selector of every rule matches exported samples: the metric, each label it filters
    # on, and each value it asks for by equality
    for rule in alert_rules():
        for selector in selectors(rule["expr"]):
            if selector.metric in PROMETHEUS_OWN:
                continue
            exported = [s for s in samples if s.metric == selector.metric]
            assert exported, f"{rule['alert']}: {selector.metric} is not exported"
            for label, operator, value in selector.matchers:
                assert any(label in s.labels for s in exported), f"{rule['alert']}: {selector.metric} has no {label}"
                if operator == "=":
                    assert any(s.labels.get(label) == value for s in exported), (
                        f"{rule['alert']}: no {selector.metric}{{{label}=\"{value}\"}}")


@pytest.mark.urls(__name__)
def test_the_rollup_stale_alert_can_fire_when_beat_never_ran(client, db, monkeypatch):
    import analytics.metrics
    from analytics.models import RollupState

    # given a web process that started two hours ago and no rollup ever ran (beat is not running)
    assert not RollupState.objects.exists()
    monkeypatch.setattr(analytics.metrics, "PROCESS_STARTED_AT", analytics.metrics.PROCESS_STARTED_AT - 7200)
    # when /metrics is scraped
    text = client.get("/metrics").content.decode()
    # then the rollup age is exported, counted from the process start
    ages = [float(value) for value in re.findall(r"^kefu_analytics_rollup_age_seconds (\S+)$", text, re.M)]
    assert len(ages) == 1 and 7200 <= ages[0] < 7300
    # and the rule's condition (max(...) > 1800) holds on it, so the alert fires after its "for"
    rule = {rule["alert"]: rule for rule in alert_rules()}["KefuAnalyticsRollupStale"]
    threshold = float(re.fullmatch(r"max\(kefu_analytics_rollup_age_seconds\) > (\d+)", rule["expr"]).group(1))
    assert max(ages) > threshold


@pytest.mark.urls(__name__)
def test_a_saturated_widget_key_shows_in_the_series_its_alert_watches(client, db, settings):
    from chat.pipeline.guard import request_rate_check

    def refusals() -> float:
        text = client.get("/metrics").content.decode()
        return sum(float(value) for value in
                   re.findall(r'^kefu_chat_rate_limited_total\{scope="key"\} (\S+)$', text, re.M))

    # given a widget key whose shared bucket holds 2 questions a minute
    settings.KEFU_CHAT_RATE_LIMITS = {"key": (2, 60), "ip": (1000, 60), "conversation": (1000, 60)}
    before = refusals()
    # when customers from five different addresses ask
    for n in range(5):
        request_rate_check(widget_key="saturated-key", ip=f"2001:db8:{n}::1", conversation=None)
    # then three refusals by the key's bucket are on /metrics, in the series the alert's rate() reads
    assert refusals() == before + 3
    rule = {rule["alert"]: rule for rule in alert_rules()}["KefuWidgetKeyRateLimited"]
    assert selectors(rule["expr"]) == [Selector("kefu_chat_rate_limited_total", (("scope", "=", "key"),))]
    assert rule["labels"]["severity"] == "page"
