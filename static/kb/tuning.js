// Live progress of a knowledge base's tuning run or model switch: while one is queued or running, its stage and % are
// polled from the JSON endpoint every 2 s; when it ends the page reloads to show the result.
(function () {
  const section = document.getElementById("kb-tuning");
  if (!section) return;
  const active = () => section.querySelector('tr[data-status="queued"], tr[data-status="running"]');
  if (!active()) return;

  async function poll() {
    try {
      const reply = await fetch(section.dataset.progressUrl, { credentials: "same-origin" });
      const body = await reply.json();
      for (const run of body.runs) {
        const row = section.querySelector('tr[data-run="' + run.id + '"]');
        if (!row) continue;
        if (run.status !== row.dataset.status && (run.status === "done" || run.status === "failed")) {
          window.location.reload();
          return;
        }
        const stage = row.querySelector(".kb-run-stage");
        const percent = row.querySelector(".kb-run-percent");  // a model switch: its words are the page's own
        const bar = row.querySelector(".kb-bar > span");
        if (stage) stage.textContent = run.stage + " · " + run.progress + "%";
        if (percent) percent.textContent = run.progress + "%";
        if (bar) bar.style.width = run.progress + "%";
      }
    } catch (err) { /* transient: try again on the next tick */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
