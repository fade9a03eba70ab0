/* Draws the dashboard's charts from the specs the server rendered into #chart-specs (Chart.js, vendored). */
(function () {
  "use strict";
  var PALETTE = ["#0b6e4f", "#2f6db5", "#d08c12", "#b8433a", "#7a4fb0", "#5b6575", "#1a9aa0", "#c2577f",
                 "#6b8e23", "#8c564b", "#e377c2", "#17becf"];

  function colour(index) { return PALETTE[index % PALETTE.length]; }

  function dataset(spec, set, index) {
    var c = colour(index);
    return {
      label: set.label, data: set.data, stack: set.stack || undefined, borderColor: c,
      backgroundColor: spec.kind === "bar" ? c : c + "33", borderWidth: spec.kind === "bar" ? 0 : 2,
      pointRadius: set.data.length > 60 ? 0 : 2, spanGaps: true, tension: 0.2
    };
  }

  function options(spec) {
    var y = { beginAtZero: true, stacked: spec.stacked, title: { display: !!spec.y_label, text: spec.y_label } };
    if (spec.percent) { y.max = 100; }
    return {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: { x: { stacked: spec.stacked, ticks: { maxTicksLimit: 12 } }, y: y }
    };
  }

  function draw(spec) {
    var canvas = document.getElementById("chart-" + spec.id);
    if (!canvas) { return; }
    new window.Chart(canvas, {
      type: spec.kind,
      data: { labels: spec.labels, datasets: spec.datasets.map(function (set, i) { return dataset(spec, set, i); }) },
      options: options(spec)
    });
    canvas.setAttribute("data-drawn", String(spec.datasets.length));
  }

  var source = document.getElementById("chart-specs");
  if (!source || !window.Chart) { return; }
  JSON.parse(source.textContent).forEach(draw);
})();
