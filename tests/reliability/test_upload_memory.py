"""Any accepted upload is ingested or refused within 300 MB of RSS (issue 16, item 4).

Each case is parsed as ingestion parses it, in a child process of its own (Django and every parser's
library loaded: about 85 MB before the file is read), by ``tests.reliability.parse_probe``; its peak RSS
(VmHWM) must stay under 300 MB. The cases are the bad-input corpus's bombs at full size, and the
largest file each limit still accepts (the worst an accepted upload can cost).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env
from tests.reliability import bad_files

PEAK_LIMIT_MB = 300
CASES = [
    # (file name, builder, "ok" or the start of the refusal)
    ("sheet.xlsx", lambda: bad_files.xlsx_declaring_a_huge_sheet(1_048_576), "ok"),
    ("far.xlsx", bad_files.xlsx_with_a_far_cell, "The sheet 'Sheet' has a value at XFD1048576"),
    ("strings.xlsx", lambda: bad_files.xlsx_with_shared_strings(1_000_001), "The workbook holds more than"),
    ("cells.xlsx", lambda: bad_files.xlsx_with_many_cells(99_990), "ok"),
    ("full.xlsx", lambda: bad_files.xlsx_full_of_cells(99_990, 6), "ok"),
    ("wide.csv", lambda: bad_files.csv_with_a_wide_row(9_900_000), "Row 4 of the CSV file has more than 256"),
    ("paragraphs.docx", lambda: bad_files.docx_with_many_paragraphs(170_000), "ok"),
    ("grid.docx", bad_files.docx_table_declaring_a_huge_grid, "ok"),
    ("pages.pdf", lambda: bad_files.pdf_with_many_pages(10_000), "ok"),
    ("objects.pdf", lambda: bad_files.pdf_with_many_objects(490_000), "ok"),
    ("objects-refused.pdf", lambda: bad_files.pdf_with_many_objects(1_000_000), "The PDF has 1,000,007 objects"),
    ("elements.html", lambda: bad_files.html_with_many_elements(99_990), "ok"),
    ("nested.html", lambda: bad_files.html_nested(1_000_000), "The HTML page nests elements"),
    ("wide-chars.txt", lambda: bad_files.text_with_one_astral_character(19), "The document has 19,922,918"),
    ("huge.txt", lambda: bad_files.text_with_one_astral_character(48), "The document has 50,331,608"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, build, expected", CASES, ids=[case[0] for case in CASES])
def test_an_upload_is_parsed_or_refused_within_300_mb(tmp_path, name, build, expected):
    # given the file, at most 50 MB (what an upload may be)
    data = build()
    assert len(data) <= 50 * 1024 * 1024
    path = tmp_path / name
    path.write_bytes(data)
    # when a fresh process parses it as ingestion does
    result = subprocess.run([PYTHON, "-m", "tests.reliability.parse_probe", str(path), name], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env=subprocess_env(DATABASE_URL=None, REDIS_URL=None, KEFU_WARMUP="0",
                                               KEFU_KB_RESUME_ON_START="false", KEFU_DATA_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # then it ends as expected, and the process never held more than 300 MB
    if expected == "ok":
        assert report["outcome"] == "ok", report
    else:
        assert report["outcome"] == "refused" and report["message"].startswith(expected), report
    assert report["peak_mb"] <= PEAK_LIMIT_MB, report
