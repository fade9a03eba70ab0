"""Chart values handed to the browser: a chart is a frozen spec that dashboard.js draws with Chart.js."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    label: str
    data: tuple[float | None, ...]
    stack: str = ""


@dataclass(frozen=True)
class ChartSpec:
    id: str
    title: str
    kind: str  # "line" | "bar"
    labels: tuple[str, ...]
    datasets: tuple[Dataset, ...]
    stacked: bool = False
    y_label: str = ""
    percent: bool = False

    def as_dict(self) -> dict:
        return {
            "id": self.id, "title": self.title, "kind": self.kind, "labels": list(self.labels),
            "stacked": self.stacked, "y_label": self.y_label, "percent": self.percent,
            "datasets": [{"label": d.label, "data": list(d.data), "stack": d.stack} for d in self.datasets],
        }

    @property
    def has_data(self) -> bool:
        return any(value for dataset in self.datasets for value in dataset.data)
