// Multi-file drag-and-drop upload with a live progress bar per document.
// Each file is its own request (a bad file is refused alone, with the server's message);
// accepted documents are then polled on the JSON progress endpoint until ready or failed.
(function () {
  "use strict";
  const drop = document.getElementById("kb-drop");
  if (!drop) return;
  const input = document.getElementById("kb-files");
  const list = document.getElementById("kb-uploads");
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  // The page's words for each state (kb.views.upload_strings, in the staff member's language).
  const strings = document.getElementById("kb-upload-strings");
  const T = Object.assign({
    uploading: "uploading", unexpected: "Unexpected server reply.", refused: "Upload refused.",
    duplicate: "already in this knowledge base ({status})", queued: "queued", network: "network error",
    failed: "failed: {error}", ready: "ready · {chunks} chunks", statuses: {}
  }, strings ? JSON.parse(strings.textContent) : {});
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));
  const statusName = (code) => T.statuses[code] || code;
  const rows = new Map(); // document id -> list item
  let timer = null;

  function item(name) {
    const li = document.createElement("li");
    li.innerHTML = '<span class="name"></span> — <span class="stage"></span>' +
      '<div class="kb-bar"><span></span></div>';
    li.querySelector(".name").textContent = name;
    li.querySelector(".stage").textContent = T.uploading;
    list.appendChild(li);
    return li;
  }

  function show(li, percent, stage, state) {
    li.querySelector(".kb-bar > span").style.width = Math.max(0, Math.min(100, percent)) + "%";
    li.querySelector(".stage").textContent = stage;
    if (state) li.className = state;
  }

  function upload(file) {
    const li = item(file.name);
    const form = new FormData();
    form.append("files", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", drop.dataset.uploadUrl);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) show(li, 20 * e.loaded / e.total, T.uploading); };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = { error: T.unexpected }; }
      if (xhr.status >= 400) { show(li, 100, body.error || T.refused, "failed"); return; }
      for (const doc of body.documents) {
        if (!doc.created) { show(li, 100, fill(T.duplicate, { status: statusName(doc.status) }), doc.status); continue; }
        rows.set(doc.id, li);
        show(li, 0, T.queued);
      }
      poll();
    };
    xhr.onerror = () => show(li, 100, T.network, "failed");
    xhr.send(form);
  }

  function poll() {
    if (timer || rows.size === 0) return;
    timer = setTimeout(async () => {
      timer = null;
      const ids = Array.from(rows.keys()).join(",");
      try {
        const reply = await fetch(drop.dataset.progressUrl + "?ids=" + ids, { credentials: "same-origin" });
        const body = await reply.json();
        for (const doc of body.documents) {
          const li = rows.get(doc.id);
          if (!li) continue;
          if (doc.status === "failed") { show(li, 100, fill(T.failed, { error: doc.error_message }), "failed"); rows.delete(doc.id); }
          else if (doc.status === "ready") { show(li, 100, fill(T.ready, { chunks: doc.chunk_count }), "ready"); rows.delete(doc.id); }
          else show(li, doc.progress, statusName(doc.status) + " · " + doc.stage);
        }
      } catch (err) { /* transient: try again on the next tick */ }
      poll();
    }, 1000);
  }

  function take(files) { Array.from(files).forEach(upload); }
  input.addEventListener("change", () => { take(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => take(e.dataTransfer.files));
})();
