"""The upload page in a real browser: headless Debian Chromium (Playwright) against a live ASGI server.

A staff member signs in, selects two files and drags a third onto the drop zone; each gets
its own progress bar, fed by the server's progress as the document is parsed, embedded and
indexed, ending at "ready" (or at the failed document's reason). Everything is real:
database, parser, embedder, index build. The ingest queue runs in this process's background
thread (embedded mode) in both test modes: this test is about the page; the service-mode
worker path is tests/kb/test_worker.py.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import off_loop, requires_chromium, staff_member
from tests.kb.files import pdf_bytes

pytestmark = [pytest.mark.browser, requires_chromium]

# Every change of an upload row (stage text, bar width, state class), recorded from the first paint on.
RECORD_ROWS = """
window.__kbRows = [];
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("kb-uploads");
  if (!list) return;
  new MutationObserver(() => {
    for (const li of list.querySelectorAll("li")) {
      window.__kbRows.push({name: li.querySelector(".name").textContent, stage: li.querySelector(".stage").textContent,
                            width: parseFloat(li.querySelector(".kb-bar > span").style.width || "0"),
                            state: li.className});
    }
  }).observe(list, {subtree: true, childList: true, attributes: true, characterData: true});
});
"""

DROP_FILE = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "text/markdown"}));
  const zone = document.getElementById("kb-drop");
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""

SERVER_PROGRESS = re.compile(r"^(parsing|embedding|indexing) · ")


@pytest.fixture
def upload_base(transactional_db, embedder, settings):
    from kb.services import knowledge_base_create

    settings.KEFU_MODE = "embedded"  # ingestion in this process's ingest thread (see the module docstring)
    settings.KEFU_KB_EMBED_BATCH = 2  # many small embedding batches: the bar moves in visible steps
    staff_member("robin", password="pw-robin-123")
    return knowledge_base_create(name="Manuals", chunk_size=64, chunk_overlap=8)


def manual_text() -> bytes:
    lines = [f"Step {i}: check that valve number {i} of the pump is closed before you open the next one."
             for i in range(1200)]
    return "\n\n".join(lines).encode()


def test_staff_upload_several_files_and_watch_each_progress_to_ready_or_its_error(
        live_asgi, upload_base, browser, tmp_path):
    kb = upload_base
    manual, locked = tmp_path / "manual.txt", tmp_path / "locked.pdf"
    manual.write_bytes(manual_text())
    locked.write_bytes(pdf_bytes(["Top secret prices."], password="pw"))
    page = browser.new_page()
    page.add_init_script(RECORD_ROWS)
    # given a staff member signed in on the knowledge base's page
    page.goto(f"{live_asgi}/kb/{kb.slug}/")
    page.fill("#id_username", "robin")
    page.fill("#id_password", "pw-robin-123")
    page.click("form button, form input[type=submit]")  # the staff sign-in page
    page.wait_for_selector("#kb-drop")
    # when they select two files and drag a third onto the drop zone
    page.set_input_files("#kb-files", [str(manual), str(locked)])
    page.evaluate(DROP_FILE, ["returns.md", "# Returns\n\nYou can return any item within thirty days.\n"])
    # then each file gets its own bar, which ends ready or with the failed document's reason
    page.wait_for_function("document.querySelectorAll('#kb-uploads li').length === 3")
    page.wait_for_function(
        "[...document.querySelectorAll('#kb-uploads li')].every(li => li.className === 'ready' || "
        "li.className === 'failed')", timeout=240_000)
    rows = {li.query_selector(".name").text_content(): li for li in page.query_selector_all("#kb-uploads li")}
    assert rows["manual.txt"].get_attribute("class") == "ready"
    assert re.fullmatch(r"ready · \d+ chunks", rows["manual.txt"].query_selector(".stage").text_content())
    assert rows["returns.md"].get_attribute("class") == "ready"
    assert rows["locked.pdf"].get_attribute("class") == "failed"
    assert "password-protected" in rows["locked.pdf"].query_selector(".stage").text_content()
    # and the manual's bar moved with the server's progress on the way, never backwards
    history = page.evaluate("window.__kbRows")
    steps = [row["width"] for row in history if row["name"] == "manual.txt" and SERVER_PROGRESS.match(row["stage"])]
    assert any(0 < width < 100 for width in steps), history[-20:]
    assert steps == sorted(steps)
    # and what the page shows is what the database holds: the manual is searchable
    from kb.models import Document
    from kb.search import hybrid

    statuses = off_loop(lambda: dict(Document.objects.filter(knowledge_base=kb).values_list("filename", "status")))
    assert statuses == {"manual.txt": "ready", "locked.pdf": "failed", "returns.md": "ready"}
    hits = off_loop(lambda: hybrid(kb, "valve number 7 of the pump", 3))
    assert hits and hits[0].document_title == "manual"
